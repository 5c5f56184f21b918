import { client, get } from "../api.js";
import { h, replace } from "../dom.js";

export async function usagePage() {
  const main = document.getElementById("main");
  const [usage, workflows] = await Promise.all([
    get(client.GET("/api/v1/usage", { params: { query: { group_by: "workflow" } } })),
    get(client.GET("/api/v1/workflows", { params: { query: { limit: 100, fields: "id,name" } } })),
  ]);
  const names = new Map(workflows.data.map((w) => [w.id, w.name]));
  const money = (value) => `$${Number(value || 0).toFixed(6)}`;
  const rows = usage.data.map((row) =>
    h("tr", {},
      h("td", {}, row.workflow_id
        ? h("a", { href: `/workflows/${encodeURIComponent(row.workflow_id)}` }, names.get(row.workflow_id) || row.workflow_id)
        : "—"),
      h("td", { class: "num" }, String(row.input_tokens)),
      h("td", { class: "num" }, String(row.output_tokens)),
      h("td", { class: "num" }, String(row.attempts)),
      h("td", { class: "num" }, money(row.cost_usd)),
    ),
  );
  const total = usage.total;
  replace(
    main,
    h("h1", {}, "Usage and cost"),
    h("p", {}, "Tokens and cost of LLM steps, per workflow."),
    h("table", {},
      h("caption", {}, "Usage per workflow"),
      h("thead", {}, h("tr", {}, ["Workflow", "Input tokens", "Output tokens", "Model calls", "Cost (USD)"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "5" }, "No LLM usage yet."))),
      h("tfoot", {}, h("tr", {},
        h("th", { scope: "row" }, "Total"),
        h("td", { class: "num" }, String(total.input_tokens)),
        h("td", { class: "num" }, String(total.output_tokens)),
        h("td", { class: "num" }, String(total.attempts)),
        h("td", { class: "num" }, money(total.cost_usd)),
      )),
    ),
  );
}
