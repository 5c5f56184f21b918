// Small charts in SVG: bars (stacked when given several series) and a line, over one
// point per interval. Built with createElementNS (no markup parsed, no inline style: the
// CSP forbids it; colours come from style.css). Each chart is an `img` named by its
// <title>, described by its <desc> (totals and the busiest interval in words), and
// followed by its data as a table, so nothing is said by shape or colour alone. Every
// bar and point carries `data-series`, `data-at` and `data-value`: what it draws.

import { h } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 720;
const HEIGHT = 220;
const PAD = { top: 12, right: 12, bottom: 34, left: 64 };
const TICKS = 4;

function el(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

/** A round step (1, 2 or 5 times a power of ten) at or above `value`. */
export function niceStep(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (step * power >= value * (1 - 1e-9)) return step * power;
  }
  return 10 * power;
}

/**
 * The y axis for values up to `top`: `{max, step}` with at most `TICKS` round steps;
 * whole steps only when `integer` (counts are never drawn at 1.5).
 */
export function scale(top, integer) {
  if (!(top > 0)) return { max: 1, step: integer ? 1 : 0.25 };
  let step = niceStep(top / TICKS);
  if (integer) step = Math.max(1, step);
  return { max: Math.ceil(top / step - 1e-9) * step, step };
}

/** A point's label: the hour (`12-03 14:00`) or the day (`2026-12-03`), in UTC. */
export function slot(at, interval) {
  const iso = new Date(at).toISOString();
  return interval === "day" ? iso.slice(0, 10) : `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
}

function describe(series, points, interval, format) {
  const parts = series.map((s) => {
    const total = s.points.reduce((sum, p) => sum + (p.value || 0), 0);
    return `${s.name}: ${format(total)} in total`;
  });
  let busiest = null;
  points.forEach((_, i) => {
    const sum = series.reduce((acc, s) => acc + (s.points[i].value || 0), 0);
    if (sum > 0 && (!busiest || sum > busiest.sum)) busiest = { sum, at: points[i].at };
  });
  const peak = busiest
    ? `; the highest, ${format(busiest.sum)}, at ${slot(busiest.at, interval)} UTC`
    : "; nothing in this range";
  return `${points.length} ${interval === "day" ? "days" : "hours"} from ${slot(points[0].at, interval)} UTC. ${parts.join(", ")}${peak}.`;
}

function axes({ max, step }, format, count, interval, points) {
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const group = el("g", { class: "axes", "aria-hidden": "true" });
  const ticks = Math.round(max / step);
  for (let i = 0; i <= ticks; i += 1) {
    const value = step * i;
    const y = PAD.top + plotH - (plotH * value) / max;
    group.append(
      el("line", { class: "grid", x1: PAD.left, x2: PAD.left + plotW, y1: y, y2: y }),
      el("text", { class: "tick", x: PAD.left - 6, y: y + 4, "text-anchor": "end" }, format(value)),
    );
  }
  // A handful of x labels, evenly spaced, whatever the number of points.
  const every = Math.max(1, Math.ceil(count / 6));
  points.forEach((p, i) => {
    if (i % every !== 0) return;
    const x = PAD.left + (plotW * (i + 0.5)) / count;
    group.append(el("text", { class: "tick", x, y: HEIGHT - 12, "text-anchor": "middle" }, slot(p.at, interval)));
  });
  return group;
}

function fallback(id, title, series, points, interval, format) {
  return h("details", { class: "chart-data" },
    h("summary", {}, `${title}: the data`),
    h("table", { id: `${id}-table` },
      h("caption", {}, `${title}, per ${interval} (UTC)`),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col" }, interval === "day" ? "Day" : "Hour"),
        series.map((s) => h("th", { scope: "col", class: "num" }, s.name)))),
      h("tbody", {}, points.map((p, i) => h("tr", {},
        h("th", { scope: "row" }, slot(p.at, interval)),
        series.map((s) => h("td", { class: "num" }, s.points[i].value === null ? "—" : format(s.points[i].value))))))));
}

/**
 * A chart of `series` (`[{key, name, points: [{at, value}]}]`, every series with the
 * same `at`s): `kind` "bars" (stacked in series order) or "line"; `integer` for counts.
 */
export function chart({ id, title, series, interval, kind = "bars", format = String, integer = false }) {
  const points = series[0].points;
  const count = Math.max(points.length, 1);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const stacked = points.map((_, i) => series.reduce((sum, s) => sum + (s.points[i].value || 0), 0));
  const top = kind === "bars" ? Math.max(0, ...stacked) : Math.max(0, ...series.flatMap((s) => s.points.map((p) => p.value || 0)));
  const axis = scale(top, integer);
  const max = axis.max;
  const y = (value) => PAD.top + plotH - (plotH * value) / max;
  const slotW = plotW / count;
  const svg = el("svg", {
    id, class: `chart chart-${kind}`, role: "img", viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-desc`,
    "data-points": points.length,
  },
  el("title", { id: `${id}-title` }, title),
  el("desc", { id: `${id}-desc` }, points.length ? describe(series, points, interval, format) : "No data."),
  axes(axis, format, count, interval, points));
  if (kind === "bars") {
    const base = points.map(() => 0);
    for (const s of series) {
      const group = el("g", { class: `series series-${s.key}`, "data-series": s.key });
      s.points.forEach((p, i) => {
        const value = p.value || 0;
        if (value <= 0) return;
        const top = y(base[i] + value);
        const height = y(base[i]) - top;
        base[i] += value;
        group.append(el("rect", {
          class: "bar", x: PAD.left + i * slotW + slotW * 0.15, y: top,
          width: Math.max(1, slotW * 0.7), height: Math.max(1, height),
          "data-series": s.key, "data-at": p.at, "data-value": value,
        }, el("title", {}, `${s.name} ${slot(p.at, interval)}: ${format(value)}`)));
      });
      svg.append(group);
    }
  } else {
    for (const s of series) {
      const group = el("g", { class: `series series-${s.key}`, "data-series": s.key });
      const known = s.points.map((p, i) => ({ p, i })).filter(({ p }) => p.value !== null);
      group.append(el("polyline", {
        class: "line", fill: "none",
        points: known.map(({ p, i }) => `${PAD.left + (i + 0.5) * slotW},${y(p.value)}`).join(" "),
      }));
      for (const { p, i } of known) {
        group.append(el("circle", {
          class: "point", cx: PAD.left + (i + 0.5) * slotW, cy: y(p.value), r: count > 60 ? 2 : 3.5,
          "data-series": s.key, "data-at": p.at, "data-value": p.value,
        }, el("title", {}, `${s.name} ${slot(p.at, interval)}: ${format(p.value)}`)));
      }
      svg.append(group);
    }
  }
  const legend = series.length > 1 || kind === "line"
    ? h("ul", { class: "legend" }, series.map((s) => h("li", { class: `legend-${s.key}` }, s.name)))
    : null;
  return h("figure", { class: "card chart-card" },
    h("figcaption", {}, h("h2", {}, title)),
    legend,
    h("div", { class: "chart-scroll" }, svg),
    fallback(id, title, series, points, interval, format));
}
