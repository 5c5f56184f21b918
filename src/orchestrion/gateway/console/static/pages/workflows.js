import { client, get } from "../api.js";
import { h, replace, statusBadge, when } from "../dom.js";

const STATUSES = ["", "draft", "active", "archived"];

export async function workflowsPage(ctx) {
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const name = h("input", { id: "filter-name", name: "name", type: "search", value: params.get("name") || "" });
  const tag = h("input", { id: "filter-tag", name: "tag", type: "search", value: params.get("tag") || "" });
  const status = h(
    "select",
    { id: "filter-status", name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === (params.get("status") || "") }, s || "any")),
  );
  const form = h(
    "form",
    { role: "search", class: "filters", "aria-label": "Search workflows" },
    h("div", { class: "field" }, h("label", { for: "filter-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { for: "filter-tag" }, "Tag"), tag),
    h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), status),
    h("button", { type: "submit" }, "Search"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (name.value.trim()) query.set("name", name.value.trim());
    if (tag.value.trim()) query.set("tag", tag.value.trim());
    if (status.value) query.set("status", status.value);
    const page = query.toString();
    ctx.navigate(page ? `/workflows?${page}` : "/workflows");
  });

  const query = { limit: 100, sort: "updated_at:desc" };
  for (const key of ["name", "tag", "status"]) {
    if (params.get(key)) query[key] = params.get(key);
  }
  const body = await get(client.GET("/api/v1/workflows", { params: { query } }));
  const rows = body.data.map((w) =>
    h(
      "tr",
      {},
      h("td", {}, h("a", { href: `/workflows/${encodeURIComponent(w.id)}` }, w.name)),
      h("td", {}, statusBadge(w.status)),
      h("td", {}, String(w.version)),
      h("td", {}, (w.tags || []).join(", ")),
      h("td", {}, when(w.updated_at)),
    ),
  );
  const table = rows.length
    ? h(
        "table",
        {},
        h("caption", {}, `${body.meta.total} workflow${body.meta.total === 1 ? "" : "s"}`),
        h(
          "thead",
          {},
          h("tr", {}, ["Name", "Status", "Version", "Tags", "Updated"].map((t) => h("th", { scope: "col" }, t))),
        ),
        h("tbody", {}, rows),
      )
    : h("p", { role: "status" }, "No workflow matches.");
  replace(
    main,
    h(
      "div",
      { class: "title-row" },
      h("h1", {}, "Workflows"),
      h("a", { class: "button", href: "/workflows/new" }, "New workflow"),
    ),
    form,
    table,
  );
}
