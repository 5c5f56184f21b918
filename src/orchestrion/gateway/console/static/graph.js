// The step graph: a workflow's steps as a DAG in SVG, layered by `needs` (a step sits one
// column right of the last step it needs), each node coloured by its status and labelled
// with it too, so colour is never the only sign. Built with createElementNS: no markup
// is parsed, and no inline style (the CSP forbids it; colours come from style.css).

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 196;
const NODE_H = 50;
const GAP_X = 56;
const GAP_Y = 22;
const PAD = 16;
const MARK = {
  succeeded: "✓", failed: "✗", running: "▶", waiting: "‖", skipped: "–", cancelled: "■", pending: "…",
};

function el(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** Each step's column: 0 without needs, else one more than its furthest need. */
export function layers(steps) {
  const byId = new Map(steps.map((s) => [s.id, s]));
  const memo = new Map();
  const visiting = new Set();
  const depth = (id) => {
    if (memo.has(id)) return memo.get(id);
    if (visiting.has(id)) return 0; // a cycle cannot run; draw it flat rather than loop
    visiting.add(id);
    const needs = (byId.get(id).needs || []).filter((n) => byId.has(n));
    const value = needs.length ? 1 + Math.max(...needs.map(depth)) : 0;
    visiting.delete(id);
    memo.set(id, value);
    return value;
  };
  return new Map(steps.map((s) => [s.id, depth(s.id)]));
}

/** Columns of step ids, each ordered by where its needs sit (fewer crossing edges). */
function columns(steps, depth) {
  const cols = [];
  for (const step of steps) (cols[depth.get(step.id)] ||= []).push(step);
  const row = new Map();
  return cols.map((col) => {
    const weight = (s) => {
      const rows = (s.needs || []).filter((n) => row.has(n)).map((n) => row.get(n));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : -1;
    };
    const sorted = col
      .map((s, i) => ({ s, i, w: weight(s) }))
      .sort((a, b) => a.w - b.w || a.i - b.i)
      .map(({ s }) => s);
    sorted.forEach((s, i) => row.set(s.id, i));
    return sorted;
  });
}

function label(id) {
  return id.length > 20 ? `${id.slice(0, 19)}…` : id;
}

/**
 * The SVG of `steps` (`[{id, needs, status, type}]`), `role="img"` with a title and a
 * description naming every step, its status and what it runs after.
 */
export function stepGraph(steps, { title = "Step graph" } = {}) {
  const depth = layers(steps);
  const cols = columns(steps, depth);
  const at = new Map();
  cols.forEach((col, x) => col.forEach((s, y) => at.set(s.id, { x: PAD + x * (NODE_W + GAP_X), y: PAD + y * (NODE_H + GAP_Y) })));
  const width = PAD * 2 + Math.max(1, cols.length) * NODE_W + Math.max(0, cols.length - 1) * GAP_X;
  const height = PAD * 2 + Math.max(1, ...cols.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  const summary = steps
    .map((s) => `${s.id}: ${s.status}${(s.needs || []).length ? `, after ${s.needs.join(" and ")}` : ""}`)
    .join("; ");
  const svg = el(
    "svg",
    {
      class: "graph", role: "img", id: "step-graph", viewBox: `0 0 ${width} ${height}`,
      width, height, "aria-labelledby": "step-graph-title", "aria-describedby": "step-graph-desc",
    },
    el("title", { id: "step-graph-title" }, title),
    el("desc", { id: "step-graph-desc" }, `${steps.length} step${steps.length === 1 ? "" : "s"}. ${summary}.`),
    el("defs", {},
      el("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }))),
  );
  const edges = el("g", { class: "edges" });
  const nodes = el("g", { class: "nodes" });
  for (const step of steps) {
    const to = at.get(step.id);
    for (const need of step.needs || []) {
      const from = at.get(need);
      if (!from) continue;
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x;
      const y2 = to.y + NODE_H / 2;
      const bend = (x2 - x1) / 2;
      edges.append(el("path", {
        class: "edge", "data-edge": `${need}->${step.id}`, "marker-end": "url(#arrow)",
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2} ${y2}`,
      }));
    }
    const status = step.status || "pending";
    nodes.append(el("g", { class: `node node-${status}`, "data-step": step.id, "data-status": status, transform: `translate(${to.x} ${to.y})` },
      el("title", {}, `${step.id} (${step.type || "step"}): ${status}`),
      el("rect", { width: NODE_W, height: NODE_H, rx: 8 }),
      el("text", { x: 12, y: 20, class: "node-id" }, label(step.id)),
      el("text", { x: 12, y: 38, class: "node-status" }, `${MARK[status] || "•"} ${status}${step.type ? ` · ${step.type}` : ""}`),
    ));
  }
  svg.append(edges, nodes);
  return svg;
}
