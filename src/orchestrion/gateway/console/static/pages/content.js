// Content: upload a file or paste text, the tenant's documents with their status, a
// document's analysis, and search (keyword, semantic or hybrid) over their chunks.

import { ApiError, client, get } from "../api.js";
import { field, h, problemAlert, replace, select, statusBadge, table, when } from "../dom.js";

const MODES = [["keyword", "Keyword"], ["semantic", "Semantic"], ["hybrid", "Hybrid"]];
const FORMATS = [["text", "Plain text"], ["markdown", "Markdown"], ["html", "HTML"]];
const POLL_MS = 700;

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function tagList(text) {
  return text.split(",").map((t) => t.trim()).filter(Boolean);
}

/** Run `work` for a form's submit: its button disabled meanwhile, a refusal shown in `out`. */
function submitting(form, out, work) {
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

function uploadForms(ctx) {
  const file = h("input", { id: "upload-file", name: "file", type: "file", required: true });
  const fileTitle = h("input", { id: "upload-title", name: "title" });
  const fileTags = h("input", { id: "upload-tags", name: "tags" });
  const fileOut = h("div", { "aria-live": "polite" });
  const upload = h("form", { class: "card", "aria-labelledby": "upload-heading" },
    h("h2", { id: "upload-heading" }, "Upload a file"),
    field(file, "File", "Text, Markdown, HTML, PDF, JSON, XML or DOCX (the type is read from the bytes)."),
    field(fileTitle, "Title (optional)"),
    field(fileTags, "Tags (optional)", "Comma-separated."),
    fileOut,
    h("button", { type: "submit" }, "Upload"));
  submitting(upload, fileOut, async () => {
    const form = new FormData();
    form.append("file", file.files[0]);
    if (fileTitle.value.trim()) form.append("title", fileTitle.value.trim());
    if (fileTags.value.trim()) form.append("tags", fileTags.value.trim());
    const created = await get(client.POST("/api/v1/content", { body: form }));
    ctx.navigate(`/content/${encodeURIComponent(created.id)}`);
  });

  const text = h("textarea", { id: "paste-text", name: "text", rows: "7", required: true });
  const textTitle = h("input", { id: "paste-title", name: "title" });
  const format = select({ id: "paste-format", name: "format" }, FORMATS, "text");
  const textTags = h("input", { id: "paste-tags", name: "tags" });
  const textOut = h("div", { "aria-live": "polite" });
  const paste = h("form", { class: "card", "aria-labelledby": "paste-heading" },
    h("h2", { id: "paste-heading" }, "Paste text"),
    field(textTitle, "Title (optional)"),
    field(format, "Format"),
    field(text, "Text"),
    field(textTags, "Tags (optional)", "Comma-separated."),
    textOut,
    h("button", { type: "submit" }, "Add text"));
  submitting(paste, textOut, async () => {
    const body = { [format.value]: text.value, tags: tagList(textTags.value) };
    if (textTitle.value.trim()) body.title = textTitle.value.trim();
    const created = await get(client.POST("/api/v1/content", { body }));
    ctx.navigate(`/content/${encodeURIComponent(created.id)}`);
  });
  return h("div", { class: "grid-2" }, upload, paste);
}

function searchForm(titles) {
  const query = h("input", { id: "content-query", name: "query", type: "search", required: true });
  const mode = select({ id: "content-mode", name: "mode" }, MODES, "keyword");
  const results = h("div", { id: "content-results", "aria-live": "polite" });
  const form = h("form", { role: "search", class: "filters", "aria-label": "Search content" },
    field(query, "Search the documents"), field(mode, "Mode"), h("button", { type: "submit" }, "Search"));
  submitting(form, results, async () => {
    const found = await get(client.POST("/api/v1/content/search", {
      body: { query: query.value, mode: mode.value, limit: 10 },
    }));
    replace(results, found.data.length
      ? h("ol", { class: "results", "aria-label": "Search results" }, found.data.map((hit) =>
          h("li", {},
            h("a", { href: `/content/${encodeURIComponent(hit.content_id)}` }, titles.get(hit.content_id) || hit.content_id),
            h("span", { class: "score" }, ` · chunk ${hit.chunk_index} · score ${hit.score.toFixed(3)}`),
            h("p", {}, hit.text))))
      : h("p", { role: "status" }, "Nothing found."));
  });
  return h("section", { "aria-labelledby": "search-heading" }, h("h2", { id: "search-heading" }, "Search"), form, results);
}

export async function contentPage(ctx) {
  const main = document.getElementById("main");
  const list = await get(client.GET("/api/v1/content", { params: { query: { limit: 100, sort: "created_at:desc" } } }));
  const titles = new Map(list.data.map((c) => [c.id, c.title]));
  const documents = list.data.length
    ? table(`${list.meta.total} document${list.meta.total === 1 ? "" : "s"}`,
        ["Title", "Type", "Status", "Size", "Tags", "Added"],
        list.data.map((c) => [
          h("a", { href: `/content/${encodeURIComponent(c.id)}` }, c.title),
          c.content_type, statusBadge(c.status), size(c.size), c.tags.join(", "), when(c.created_at),
        ]))
    : h("p", { role: "status" }, "No document yet.");
  replace(main,
    h("h1", {}, "Content"),
    uploadForms(ctx),
    searchForm(titles),
    h("section", { "aria-labelledby": "documents-heading" }, h("h2", { id: "documents-heading" }, "Documents"), documents));
}

function analysisView(analysis) {
  const facts = [
    ["Language", analysis.language],
    ["Words", String(analysis.word_count)],
    ["Difficulty", analysis.difficulty],
    ["Reading ease", `${analysis.readability.flesch_reading_ease.toFixed(1)} (grade ${analysis.readability.grade_level.toFixed(1)})`],
  ];
  return h("section", { "aria-labelledby": "analysis-heading", id: "analysis" },
    h("h2", { id: "analysis-heading" }, "Analysis"),
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    h("h3", {}, "Summary"),
    h("p", { id: "summary" }, analysis.summary || "—"),
    h("div", { class: "grid-2" },
      analysis.keywords.length
        ? table("Keywords", ["Term", "Score"], analysis.keywords.map((k) => [k.term, k.score.toFixed(3)]))
        : h("p", {}, "No keywords."),
      analysis.entities.length
        ? table("Entities", ["Text", "Label"], analysis.entities.map((e) => [e.text, e.label]))
        : h("p", {}, "No entities found.")),
    analysis.concepts.length
      ? [h("h3", {}, "Concepts"), h("ul", { class: "chips" }, analysis.concepts.map((c) => h("li", {}, c)))]
      : null);
}

export async function documentPage(ctx, id) {
  const main = document.getElementById("main");
  const byId = { params: { path: { content_id: id } } };
  let timer = null;
  let left = false;
  ctx.onLeave(() => {
    left = true;
    clearTimeout(timer);
  });
  const status = h("p", { role: "status", id: "document-status" });
  const body = h("div", {});

  function draw(doc) {
    status.replaceChildren("Status: ", statusBadge(doc.status));
    replace(body,
      h("dl", { class: "facts" },
        h("dt", {}, "Type"), h("dd", {}, doc.content_type),
        h("dt", {}, "Size"), h("dd", {}, size(doc.size)),
        h("dt", {}, "Tags"), h("dd", {}, doc.tags.join(", ") || "—"),
        h("dt", {}, "Added"), h("dd", {}, when(doc.created_at)),
        h("dt", {}, "SHA-256"), h("dd", { class: "code" }, doc.sha256)),
      doc.status === "failed" ? h("p", { class: "step-error" }, `Processing failed: ${doc.error}`) : null,
      doc.analysis ? analysisView(doc.analysis) : null);
  }

  async function poll() {
    // Processing happens after the upload answers; look again until it ends.
    try {
      const doc = await get(client.GET("/api/v1/content/{content_id}", byId));
      if (left) return;
      draw(doc);
      if (doc.status === "processing") timer = setTimeout(poll, POLL_MS);
    } catch (error) {
      if (!left) ctx.showError(error);
    }
  }

  const doc = await get(client.GET("/api/v1/content/{content_id}", byId));
  draw(doc);
  replace(main, h("p", { class: "meta" }, h("a", { href: "/content" }, "Content")), h("h1", {}, doc.title), status, body);
  if (doc.status === "processing") timer = setTimeout(poll, POLL_MS);
}
