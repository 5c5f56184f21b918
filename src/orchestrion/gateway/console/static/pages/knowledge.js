// Knowledge graph: search the nodes, browse them, import a graph, and a node with its
// neighbours and the edges that join them.

import { ApiError, client, get } from "../api.js";
import { field, h, problemAlert, replace, select, table, when } from "../dom.js";

const MODES = [["keyword", "Keyword"], ["semantic", "Semantic"], ["hybrid", "Hybrid"]];
const EXAMPLE = {
  nodes: [
    { key: "python", type: "concept", name: "Python", text: "A programming language." },
    { key: "functions", type: "concept", name: "Functions" },
  ],
  edges: [{ source: "functions", target: "python", type: "requires" }],
};

const nodeLink = (id, name) => h("a", { href: `/knowledge/${encodeURIComponent(id)}` }, name);

function onSubmit(form, out, work) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(out);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      replace(out, problemAlert(error));
    } finally {
      button.disabled = false;
    }
  });
}

async function nodesTable() {
  const list = await get(client.GET("/api/v1/knowledge/nodes", { params: { query: { limit: 100 } } }));
  return list.data.length
    ? table(`${list.meta.total} node${list.meta.total === 1 ? "" : "s"}`, ["Name", "Type", "Updated"],
        list.data.map((n) => [nodeLink(n.id, n.name), n.type, when(n.updated_at)]))
    : h("p", { role: "status" }, "The graph is empty.");
}

export async function knowledgePage() {
  const main = document.getElementById("main");
  const query = h("input", { id: "knowledge-query", name: "query", type: "search", required: true });
  const mode = select({ id: "knowledge-mode", name: "mode" }, MODES, "keyword");
  const results = h("div", { id: "knowledge-results", "aria-live": "polite" });
  const search = h("form", { role: "search", class: "filters", "aria-label": "Search the graph" },
    field(query, "Search nodes"), field(mode, "Mode"), h("button", { type: "submit" }, "Search"));
  onSubmit(search, results, async () => {
    const found = await get(client.POST("/api/v1/knowledge/search", { body: { query: query.value, mode: mode.value, limit: 20 } }));
    replace(results, found.data.length
      ? h("ol", { class: "results", "aria-label": "Search results" }, found.data.map((hit) =>
          h("li", {}, nodeLink(hit.node_id, hit.name), h("span", { class: "score" }, ` · score ${hit.score.toFixed(3)}`))))
      : h("p", { role: "status" }, "No node matches."));
  });

  const nodes = h("section", { "aria-labelledby": "nodes-heading" }, h("h2", { id: "nodes-heading" }, "Nodes"), await nodesTable());

  const graph = h("textarea", { id: "import-graph", name: "graph", class: "code", rows: "12", spellcheck: "false" });
  graph.value = JSON.stringify(EXAMPLE, null, 2);
  const imported = h("div", { "aria-live": "polite" });
  const importForm = h("form", { class: "card", "aria-labelledby": "import-heading" },
    h("h2", { id: "import-heading" }, "Import"),
    field(graph, "Graph (JSON)", "{\"nodes\": [{\"key\", \"type\", \"name\"}], \"edges\": [{\"source\": key, \"target\": key, \"type\"}]}: all or nothing."),
    imported,
    h("button", { type: "submit" }, "Import"));
  onSubmit(importForm, imported, async () => {
    let body;
    try {
      body = JSON.parse(graph.value);
    } catch (error) {
      replace(imported, h("p", { role: "alert", class: "alert-error" }, `The graph is not JSON: ${error.message}`));
      return;
    }
    const done = await get(client.POST("/api/v1/knowledge/import", { body }));
    replace(imported, h("p", { role: "status", class: "saved" }, `Imported ${done.nodes} nodes and ${done.edges} edges.`));
    replace(nodes, h("h2", { id: "nodes-heading" }, "Nodes"), await nodesTable());
  });

  replace(main, h("h1", {}, "Knowledge graph"), search, results, h("div", { class: "grid-2" }, nodes, importForm));
}

export async function nodePage(ctx, id) {
  const main = document.getElementById("main");
  const path = { params: { path: { node_id: id } } };
  const [node, neighbours, outgoing, incoming] = await Promise.all([
    get(client.GET("/api/v1/knowledge/nodes/{node_id}", path)),
    get(client.GET("/api/v1/knowledge/nodes/{node_id}/neighbors", { params: { path: { node_id: id }, query: { direction: "both", depth: 1 } } })),
    get(client.GET("/api/v1/knowledge/edges", { params: { query: { source: id, limit: 100 } } })),
    get(client.GET("/api/v1/knowledge/edges", { params: { query: { target: id, limit: 100 } } })),
  ]);
  const names = new Map(neighbours.data.map((n) => [n.id, n.name]));
  const edges = [
    ...outgoing.data.map((e) => [e.type, "→ to", nodeLink(e.target, names.get(e.target) || e.target), String(e.weight)]),
    ...incoming.data.map((e) => [e.type, "← from", nodeLink(e.source, names.get(e.source) || e.source), String(e.weight)]),
  ];
  const properties = Object.keys(node.properties || {}).length;
  replace(main,
    h("p", { class: "meta" }, h("a", { href: "/knowledge" }, "Knowledge graph")),
    h("h1", {}, node.name),
    h("dl", { class: "facts" },
      h("dt", {}, "Type"), h("dd", {}, node.type),
      h("dt", {}, "Updated"), h("dd", {}, when(node.updated_at))),
    node.text ? h("p", { id: "node-text" }, node.text) : null,
    properties ? [h("h2", {}, "Properties"), h("pre", { class: "code" }, JSON.stringify(node.properties, null, 2))] : null,
    h("div", { class: "grid-2" },
      h("section", { "aria-labelledby": "neighbours-heading" },
        h("h2", { id: "neighbours-heading" }, "Neighbours"),
        neighbours.data.length
          ? h("ul", { class: "plain", id: "neighbours" }, neighbours.data.map((n) =>
              h("li", {}, nodeLink(n.id, n.name), h("span", { class: "meta" }, ` · ${n.type}`))))
          : h("p", {}, "No neighbour.")),
      h("section", { "aria-labelledby": "edges-heading" },
        h("h2", { id: "edges-heading" }, "Edges"),
        edges.length ? table("Edges of this node", ["Type", "Direction", "Node", "Weight"], edges) : h("p", {}, "No edge."))));
}
