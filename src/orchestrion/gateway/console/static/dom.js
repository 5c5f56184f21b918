// Small DOM helpers: elements are built, never parsed from strings, so no data is
// ever interpreted as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, "");
    } else {
      el.setAttribute(key, String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function replace(target, ...children) {
  target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function statusBadge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

/** A labelled field: `<div class="field"><label for>…</label>[help]input</div>`. */
export function field(input, label, help) {
  const helpId = help ? `${input.id}-help` : null;
  if (helpId) input.setAttribute("aria-describedby", helpId);
  return h("div", { class: "field" },
    h("label", { for: input.id }, label),
    help ? h("p", { id: helpId, class: "help" }, help) : null,
    input);
}

/** A `<select>` of `[value, text]` pairs, `current` selected. */
export function select(attrs, options, current) {
  return h("select", attrs,
    options.map(([value, text]) => h("option", { value, selected: String(value) === String(current ?? "") }, text)));
}

/** A table with a caption and column headers; `rows` are arrays of cells. */
export function table(caption, headers, rows) {
  return h("table", {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((c) => h("td", {}, c))))));
}

/** An error shown inside a form (`role="alert"`), with the problem's field errors. */
export function problemAlert(error) {
  const items = (error.errors || []).map((e) => h("li", {}, h("code", { class: "loc" }, (e.loc || []).filter((p) => p !== "body").join(".") || "body"), " ", e.msg));
  return h("div", { role: "alert", class: "alert-error" }, h("p", {}, error.message), items.length ? h("ul", {}, items) : null);
}
