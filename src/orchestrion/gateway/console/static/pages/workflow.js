import { ApiError, call, client, get } from "../api.js";
import { h, replace, statusBadge, when } from "../dom.js";

const SERVER_FIELDS = ["id", "tenant_id", "version", "created_by", "created_at", "updated_at"];

const EXAMPLE = {
  name: "double-then-add",
  description: "demo",
  tags: ["demo"],
  status: "active",
  inputs: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] },
  steps: [
    { id: "double", type: "transform", with: { value: "{{ inputs.x * 2 }}" } },
    { id: "add", type: "transform", needs: ["double"], with: { value: "{{ steps.double.output.value + 1 }}" } },
  ],
  outputs: { result: "{{ steps.add.output.value }}" },
};

function definitionOf(workflow) {
  const definition = {};
  for (const [key, value] of Object.entries(workflow)) {
    if (SERVER_FIELDS.includes(key) || value === null) continue;
    definition[key] = value;
  }
  return definition;
}

/** The editor's text goes out as it is (JSON or YAML), not re-serialised. */
const asIs = (text) => text;

/** JSON when the text opens an object, else YAML (the definitions endpoints take both). */
function contentType(text) {
  return text.trimStart().startsWith("{") ? "application/json" : "application/yaml";
}

/** A problem's `loc` as a path into the definition: `steps[0].needs[0]`. */
function locPath(loc) {
  let path = "";
  (loc || []).forEach((part, i) => {
    if (i === 0 && part === "body") return;
    path += typeof part === "number" ? `[${part}]` : `${path ? "." : ""}${part}`;
  });
  return path || "definition";
}

function errorList(error) {
  const items = error.errors.length
    ? error.errors.map((e) => h("li", {}, h("code", { class: "loc" }, locPath(e.loc)), " ", e.msg))
    : [h("li", {}, error.message)];
  return [h("p", {}, `The definition was refused (${error.status}): ${error.message}`), h("ul", {}, items)];
}

export async function workflowPage(ctx, id) {
  const main = document.getElementById("main");
  let workflow = null;
  let etag = null;
  if (id) {
    const answer = await call(client.GET("/api/v1/workflows/{workflow_id}", { params: { path: { workflow_id: id } } }));
    workflow = answer.data;
    etag = answer.response.headers.get("etag");
  }

  const editor = h(
    "textarea",
    {
      id: "definition",
      name: "definition",
      class: "code",
      rows: "22",
      spellcheck: "false",
      "aria-describedby": "definition-help definition-errors",
    },
  );
  editor.value = JSON.stringify(workflow ? definitionOf(workflow) : EXAMPLE, null, 2);
  const errors = h("div", { id: "definition-errors", class: "errors", "aria-live": "polite" });
  const save = h("button", { type: "submit" }, workflow ? "Save" : "Create workflow");
  const saved = h("p", { class: "saved", role: "status" });
  const editorForm = h(
    "form",
    { class: "editor", "aria-labelledby": "definition-title" },
    h("h2", { id: "definition-title" }, "Definition"),
    h("div", { class: "editor-grid" },
      h("div", { class: "field" },
        h("label", { for: "definition" }, "Definition (JSON or YAML)"),
        h("p", { id: "definition-help", class: "help" },
          "A document opening with { is sent as JSON, anything else as YAML."),
        editor,
      ),
      errors,
    ),
    h("div", { class: "actions" }, save, saved),
  );
  editorForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(errors);
    saved.textContent = "";
    save.disabled = true;
    const text = editor.value;
    try {
      if (workflow) {
        const headers = { "Content-Type": contentType(text), ...(etag ? { "If-Match": etag } : {}) };
        const answer = await call(client.PUT("/api/v1/workflows/{workflow_id}", {
          params: { path: { workflow_id: workflow.id } },
          body: text,
          bodySerializer: asIs,
          headers,
        }));
        workflow = answer.data;
        etag = answer.response.headers.get("etag");
        saved.textContent = `Saved: version ${workflow.version}.`;
        editor.value = JSON.stringify(definitionOf(workflow), null, 2);
      } else {
        const created = await get(client.POST("/api/v1/workflows", {
          body: text,
          bodySerializer: asIs,
          headers: { "Content-Type": contentType(text) },
        }));
        ctx.navigate(`/workflows/${encodeURIComponent(created.id)}`, { replaceState: true });
      }
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      replace(errors, h("div", { role: "alert", class: "alert-error" }, errorList(error)));
      editor.setAttribute("aria-invalid", "true");
    } finally {
      save.disabled = false;
    }
  });

  if (!workflow) {
    replace(main, h("h1", {}, "New workflow"), editorForm);
    return;
  }

  const inputs = h("textarea", { id: "run-inputs", name: "inputs", class: "code", rows: "6", spellcheck: "false" });
  inputs.value = "{}";
  const runErrors = h("div", { id: "run-errors", class: "errors", "aria-live": "polite" });
  const run = h("button", { type: "submit" }, "Run");
  const runForm = h(
    "form",
    { class: "card", "aria-labelledby": "run-title" },
    h("h2", { id: "run-title" }, "Run"),
    h("div", { class: "field" }, h("label", { for: "run-inputs" }, "Inputs (JSON)"), inputs),
    runErrors,
    run,
  );
  runForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    replace(runErrors);
    let body;
    try {
      body = { inputs: JSON.parse(inputs.value || "{}") };
    } catch (error) {
      replace(runErrors, h("p", { role: "alert", class: "alert-error" }, `Inputs are not JSON: ${error.message}`));
      return;
    }
    run.disabled = true;
    try {
      const started = await get(client.POST("/api/v1/workflows/{workflow_id}/executions", {
        params: { path: { workflow_id: workflow.id } },
        body,
      }));
      ctx.navigate(`/executions/${encodeURIComponent(started.id)}`);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      replace(runErrors, h("div", { role: "alert", class: "alert-error" }, errorList(error).slice(1)));
    } finally {
      run.disabled = false;
    }
  });

  const executions = h("section", { "aria-labelledby": "executions-title" }, h("h2", { id: "executions-title" }, "Recent executions"));
  try {
    const query = { workflow_id: workflow.id, limit: 10, sort: "created_at:desc" };
    const body = await get(client.GET("/api/v1/executions", { params: { query } }));
    executions.append(
      body.data.length
        ? h("ul", { class: "plain" }, body.data.map((e) =>
            h("li", {}, h("a", { href: `/executions/${encodeURIComponent(e.id)}` }, e.id), " ", statusBadge(e.status), " ", when(e.created_at))))
        : h("p", {}, "Not run yet."),
    );
  } catch (error) {
    executions.append(h("p", {}, error.message));
  }

  replace(
    main,
    h("h1", {}, workflow.name),
    h("p", { class: "meta" }, statusBadge(workflow.status), ` version ${workflow.version} · updated ${when(workflow.updated_at)}`),
    h("div", { class: "columns" }, runForm, executions),
    editorForm,
  );
}
