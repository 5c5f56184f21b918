import { ApiError, call, client, get, realtime } from "../api.js";
import { h, replace, statusBadge, when } from "../dom.js";
import { stepGraph } from "../graph.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const ACTIONS = {
  Approve: "/api/v1/executions/{execution_id}/steps/{step_id}/approve",
  Reject: "/api/v1/executions/{execution_id}/steps/{step_id}/approve",
  Pause: "/api/v1/executions/{execution_id}/pause",
  Resume: "/api/v1/executions/{execution_id}/resume",
  Cancel: "/api/v1/executions/{execution_id}/cancel",
  Retry: "/api/v1/executions/{execution_id}/retry",
};

/**
 * The execution view: its step graph and steps, kept current by the realtime socket
 * (channel `execution:<id>`, replayed from the start, then live), LLM tokens appended as
 * they stream, and the buttons that act on it.
 */
export async function executionPage(ctx, id) {
  const main = document.getElementById("main");
  const byId = { params: { path: { execution_id: id } } };
  let execution = await get(client.GET("/api/v1/executions/{execution_id}", byId));
  // The version that runs gives each step its type and what it needs (the graph's edges).
  const shape = new Map();
  try {
    const version = await get(client.GET("/api/v1/workflows/{workflow_id}/versions/{version}", {
      params: { path: { workflow_id: execution.workflow_id, version: execution.workflow_version } },
    }));
    for (const step of version.steps || []) shape.set(step.id, { type: step.type, needs: step.needs || [] });
  } catch {
    // Without the definition the steps still show, without type and edges.
  }
  const approvals = new Set(); // steps waiting for an approval
  const tokens = new Map(); // step id → its <pre> of streamed text
  let live = null; // the realtime connection
  let refreshTimer = null;

  const status = h("p", { id: "execution-status", role: "status", "aria-live": "polite" });
  const controls = h("div", { class: "actions", role: "group", "aria-label": "Execution controls" });
  const graph = h("figure", { class: "card graph-card", "aria-labelledby": "graph-title" });
  const steps = h("section", { "aria-labelledby": "steps-title" });
  const outputs = h("section", { "aria-labelledby": "outputs-title" });
  const liveNote = h("p", { class: "live" });
  const log = h("ol", { class: "events", id: "events" });

  async function act(label, stepId, body) {
    ctx.clearAlerts();
    const path = stepId === undefined ? { execution_id: id } : { execution_id: id, step_id: stepId };
    try {
      await call(client.POST(ACTIONS[label], { params: { path }, ...(body === undefined ? {} : { body }) }));
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      ctx.showError(new Error(`${label}: ${error.message}`));
    }
  }

  function stepRow(step) {
    const actions = [];
    const approval = approvals.has(step.id) || (shape.get(step.id) || {}).type === "approval";
    if (step.status === "waiting" && approval) {
      actions.push(
        h("button", { type: "button", onclick: () => act("Approve", step.id, { approved: true }) },
          "Approve", h("span", { class: "visually-hidden" }, ` step ${step.id}`)),
        h("button", { type: "button", class: "danger", onclick: () => act("Reject", step.id, { approved: false }) },
          "Reject", h("span", { class: "visually-hidden" }, ` step ${step.id}`)),
      );
    }
    const stream = tokens.get(step.id);
    return h(
      "li",
      { class: `step step-${step.status}`, "data-step": step.id },
      h("div", { class: "step-head" },
        h("strong", {}, step.id), " ", statusBadge(step.status),
        shape.has(step.id)
          ? h("span", { class: "meta" }, ` ${shape.get(step.id).type}`,
              shape.get(step.id).needs.length ? ` · after ${shape.get(step.id).needs.join(", ")}` : "")
          : null,
        h("span", { class: "meta" }, ` · attempts ${step.attempts} · ${when(step.started_at)} → ${when(step.finished_at)}`),
      ),
      step.error ? h("p", { class: "step-error" }, step.error) : null,
      stream || null,
      step.output !== null && step.output !== undefined
        ? h("details", {}, h("summary", {}, "Output"), h("pre", { class: "code" }, JSON.stringify(step.output, null, 2)))
        : null,
      actions.length ? h("div", { class: "actions" }, actions) : null,
    );
  }

  /** Every step of the version (those not started yet as `pending`), with its state. */
  function graphSteps() {
    const states = new Map(execution.steps.map((s) => [s.id, s]));
    const ids = shape.size ? [...shape.keys()] : execution.steps.map((s) => s.id);
    for (const s of execution.steps) if (!ids.includes(s.id)) ids.push(s.id);
    return ids.map((stepId) => ({
      id: stepId,
      needs: (shape.get(stepId) || {}).needs || [],
      type: (shape.get(stepId) || {}).type,
      status: (states.get(stepId) || {}).status || "pending",
    }));
  }

  function draw() {
    replace(
      graph,
      h("figcaption", {},
        h("h2", { id: "graph-title" }, "Step graph"),
        h("p", { class: "help" }, "Columns follow each step's needs; the same steps are listed under ",
          h("a", { href: "#steps-title" }, "Steps"), ".")),
      h("div", { class: "graph-scroll" }, stepGraph(graphSteps(), { title: `Steps of execution ${execution.id}` })),
    );
    status.replaceChildren("Status: ", statusBadge(execution.status));
    const buttons = [];
    if (!TERMINAL.has(execution.status)) {
      if (execution.status === "paused") {
        buttons.push(h("button", { type: "button", onclick: () => act("Resume") }, "Resume"));
      } else {
        buttons.push(h("button", { type: "button", onclick: () => act("Pause") }, "Pause"));
      }
      buttons.push(h("button", { type: "button", class: "danger", onclick: () => act("Cancel") }, "Cancel"));
    }
    if (execution.status === "failed" || execution.status === "cancelled") {
      buttons.push(h("button", { type: "button", onclick: () => act("Retry") }, "Retry"));
    }
    replace(controls, buttons);
    replace(
      steps,
      h("h2", { id: "steps-title" }, "Steps"),
      h("ol", { class: "steps" }, execution.steps.map(stepRow)),
    );
    const usage = execution.usage || {};
    replace(
      outputs,
      h("h2", { id: "outputs-title" }, "Result"),
      execution.error ? h("p", { class: "step-error" }, `Error: ${execution.error}`) : null,
      h("pre", { class: "code", id: "outputs" }, JSON.stringify(execution.outputs, null, 2)),
      h("p", { class: "meta" },
        `Tokens in ${usage.input_tokens || 0}, out ${usage.output_tokens || 0} · cost $${Number(usage.cost_usd || 0).toFixed(6)}`),
    );
  }

  async function refresh() {
    try {
      execution = await get(client.GET("/api/v1/executions/{execution_id}", byId));
      draw();
    } catch (error) {
      ctx.showError(error);
    }
  }

  function later() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      refresh();
    }, 100);
  }

  function onEvent(event) {
    if (event.type === "step.waiting" && event.data && event.data.kind === "approval") approvals.add(event.step_id);
    if (event.type === "step.approved" || event.type === "step.rejected" || event.type === "step.succeeded" || event.type === "step.failed") {
      approvals.delete(event.step_id);
    }
    log.append(h("li", {}, `#${event.seq} ${event.type}${event.step_id ? ` (${event.step_id})` : ""}`));
    later();
  }

  function onToken(frame) {
    let pre = tokens.get(frame.step_id);
    if (!pre) {
      pre = h("pre", { class: "tokens", "aria-live": "off", "data-tokens": frame.step_id });
      tokens.set(frame.step_id, pre);
      later();
    }
    pre.append(frame.text);
  }

  function connect() {
    // The SDK resumes after the last seq on every reconnection, each event once, in order.
    live = realtime({
      onToken,
      onGap: later,
      onError: (frame) => {
        liveNote.textContent = `Live updates: ${frame.message}`;
      },
      onState: (state) => {
        if (state === "reconnecting") liveNote.textContent = "Live updates paused; reconnecting…";
        else if (state === "closed") liveNote.textContent = "Live updates off.";
      },
      onFrame: (frame) => {
        if (frame.type === "subscribed") liveNote.textContent = "Live updates on.";
      },
    });
    live.subscribe(`execution:${id}`, (message) => onEvent(message.data), { after: 0 });
  }

  ctx.onLeave(() => {
    if (refreshTimer) clearTimeout(refreshTimer);
    if (live) live.close();
  });

  draw();
  replace(
    main,
    h("h1", {}, `Execution ${execution.id}`),
    h("p", { class: "meta" },
      "Workflow ", h("a", { href: `/workflows/${encodeURIComponent(execution.workflow_id)}` }, execution.workflow_id),
      ` version ${execution.workflow_version} · started ${when(execution.started_at)}`),
    status,
    controls,
    liveNote,
    graph,
    h("div", { class: "columns" }, steps, outputs),
    h("details", { class: "card" }, h("summary", {}, "Event log"), log),
  );
  connect();
}
