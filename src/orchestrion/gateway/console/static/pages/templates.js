// Templates: the marketplace (search, category, sort), and a template's README with a
// form made from its parameters' JSON Schema: instantiate it into a new workflow.

import { ApiError, client, get } from "../api.js";
import { field, h, problemAlert, replace, select } from "../dom.js";
import { markdown } from "../markdown.js";

const SORTS = [
  ["rating:desc", "Best rated"],
  ["installs:desc", "Most installed"],
  ["name:asc", "Name"],
  ["updated_at:desc", "Recently updated"],
];

function stars(rating) {
  return rating.count
    ? `★ ${rating.average.toFixed(1)} (${rating.count} rating${rating.count === 1 ? "" : "s"})`
    : "not rated yet";
}

export async function templatesPage(ctx) {
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const sort = params.get("sort") || "rating:desc";
  const query = { limit: 100, sort };
  for (const key of ["q", "category"]) if (params.get(key)) query[key] = params.get(key);
  const [categories, list] = await Promise.all([
    get(client.GET("/api/v1/templates/categories")),
    get(client.GET("/api/v1/templates", { params: { query } })),
  ]);

  const q = h("input", { id: "template-q", name: "q", type: "search", value: params.get("q") || "" });
  const category = select({ id: "template-category", name: "category" },
    [["", "any"], ...categories.data.map((c) => [c.name, `${c.name} (${c.count})`])], params.get("category") || "");
  const order = select({ id: "template-sort", name: "sort" }, SORTS, sort);
  const form = h("form", { role: "search", class: "filters", "aria-label": "Search templates" },
    field(q, "Search"), field(category, "Category"), field(order, "Sort by"), h("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if (q.value.trim()) next.set("q", q.value.trim());
    if (category.value) next.set("category", category.value);
    if (order.value !== "rating:desc") next.set("sort", order.value);
    const text = next.toString();
    ctx.navigate(text ? `/templates?${text}` : "/templates");
  });

  const cards = list.data.length
    ? h("ul", { class: "cards", "aria-label": `${list.meta.total} template${list.meta.total === 1 ? "" : "s"}` },
        list.data.map((t) => h("li", { class: "card", "data-template": t.slug || t.id },
          h("h2", {}, h("a", { href: `/templates/${encodeURIComponent(t.id)}` }, t.name)),
          h("p", { class: "meta" }, `${t.category} · ${stars(t.rating)} · ${t.installs} install${t.installs === 1 ? "" : "s"}`),
          t.tags.length ? h("ul", { class: "chips", "aria-label": "Tags" }, t.tags.map((tag) => h("li", {}, tag))) : null)))
    : h("p", { role: "status" }, "No template matches.");
  replace(main, h("h1", {}, "Templates"), form, cards);
}

/** An input for one parameter of the schema, and how to read its value back. */
function parameterInput(name, schema, required) {
  const id = `param-${name}`;
  const label = `${schema.title || name}${required ? " (required)" : ""}`;
  const help = schema.description || null;
  const initial = schema.default;
  let input;
  let read;
  if (Array.isArray(schema.enum)) {
    input = select({ id, name }, [...(required ? [] : [["", "—"]]), ...schema.enum.map((v) => [JSON.stringify(v), String(v)])],
      initial === undefined ? "" : JSON.stringify(initial));
    read = () => (input.value === "" ? undefined : JSON.parse(input.value));
  } else if (schema.type === "boolean") {
    input = h("input", { id, name, type: "checkbox", checked: initial === true });
    read = () => input.checked;
  } else if (schema.type === "integer" || schema.type === "number") {
    input = h("input", { id, name, type: "number", step: schema.type === "integer" ? "1" : "any",
      min: schema.minimum, max: schema.maximum, value: initial, required });
    read = () => (input.value === "" ? undefined : Number(input.value));
  } else if (schema.type === "array" || schema.type === "object") {
    input = h("textarea", { id, name, class: "code", rows: "4", required });
    input.value = initial === undefined ? "" : JSON.stringify(initial, null, 2);
    read = () => (input.value.trim() === "" ? undefined : JSON.parse(input.value));
    return { element: field(input, `${label} (JSON)`, help), read };
  } else {
    input = h("input", { id, name, value: initial, required });
    read = () => (input.value === "" ? undefined : input.value);
  }
  return { element: field(input, label, help), read };
}

export async function templatePage(ctx, id) {
  const main = document.getElementById("main");
  const template = await get(client.GET("/api/v1/templates/{template_id}", { params: { path: { template_id: id } } }));
  const schema = template.parameters || {};
  const required = new Set(schema.required || []);
  const inputs = Object.entries(schema.properties || {}).map(([name, prop]) => [name, parameterInput(name, prop || {}, required.has(name))]);
  const workflowName = h("input", { id: "instantiate-name", name: "name", value: template.name });
  const out = h("div", { id: "instantiate-result", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Create workflow");
  const form = h("form", { class: "card", "aria-labelledby": "instantiate-heading" },
    h("h2", { id: "instantiate-heading" }, "Use this template"),
    field(workflowName, "Workflow name"),
    inputs.length ? h("fieldset", {}, h("legend", {}, "Parameters"), inputs.map(([, p]) => p.element)) : h("p", {}, "No parameters."),
    out,
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(out);
    const parameters = {};
    try {
      for (const [name, p] of inputs) {
        const value = p.read();
        if (value !== undefined) parameters[name] = value;
      }
    } catch (error) {
      replace(out, h("p", { role: "alert", class: "alert-error" }, `A parameter is not JSON: ${error.message}`));
      return;
    }
    button.disabled = true;
    try {
      const body = { parameters, ...(workflowName.value.trim() ? { name: workflowName.value.trim() } : {}) };
      const workflow = await get(client.POST("/api/v1/templates/{template_id}/instantiate", {
        params: { path: { template_id: template.id } }, body,
      }));
      replace(out, h("p", { role: "status", class: "saved" }, "Created workflow ",
        h("a", { href: `/workflows/${encodeURIComponent(workflow.id)}` }, workflow.name), "."));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      replace(out, problemAlert(error));
    } finally {
      button.disabled = false;
    }
  });

  replace(main,
    h("p", { class: "meta" }, h("a", { href: "/templates" }, "Templates")),
    h("h1", {}, template.name),
    h("p", { class: "meta" }, `${template.category} · version ${template.version} · ${template.visibility} · ${stars(template.rating)} · ${template.installs} installs`),
    h("div", { class: "grid-2" },
      h("section", { "aria-labelledby": "readme-heading", class: "readme" },
        h("h2", { id: "readme-heading" }, "README"), markdown(template.description)),
      form));
}
