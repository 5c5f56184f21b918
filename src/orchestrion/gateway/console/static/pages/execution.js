import { accessToken, api, ApiError } from "../api.js";
import { h, replace, statusBadge, when } from "../dom.js";

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

/**
 * The execution view: its steps, kept current by the realtime socket (channel
 * `execution:<id>`, replayed from the start, then live), LLM tokens appended as they
 * stream, and the buttons that act on it.
 */
export async function executionPage(ctx, id) {
  const main = document.getElementById("main");
  const path = `/api/v1/executions/${encodeURIComponent(id)}`;
  let execution = (await api("GET", path)).body;
  // The version that runs gives each step its type and what it needs (the graph's edges).
  const shape = new Map();
  try {
    const version = (
      await api(
        "GET",
        `/api/v1/workflows/${encodeURIComponent(execution.workflow_id)}/versions/${execution.workflow_version}`,
      )
    ).body;
    for (const step of version.steps || []) shape.set(step.id, { type: step.type, needs: step.needs || [] });
  } catch {
    // Without the definition the steps still show, without type and edges.
  }
  const approvals = new Set(); // steps waiting for an approval
  const tokens = new Map(); // step id → its <pre> of streamed text
  let lastSeq = 0;
  let socket = null;
  let closed = false;
  let retryDelay = 500;
  let refreshTimer = null;

  const status = h("p", { id: "execution-status", role: "status", "aria-live": "polite" });
  const controls = h("div", { class: "actions", role: "group", "aria-label": "Execution controls" });
  const steps = h("section", { "aria-labelledby": "steps-title" });
  const outputs = h("section", { "aria-labelledby": "outputs-title" });
  const live = h("p", { class: "live" });
  const log = h("ol", { class: "events", id: "events" });

  async function act(label, method, url, body) {
    ctx.clearAlerts();
    try {
      await api(method, url, body === undefined ? {} : { body });
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
      const url = `${path}/steps/${encodeURIComponent(step.id)}/approve`;
      actions.push(
        h("button", { type: "button", onclick: () => act("Approve", "POST", url, { approved: true }) },
          "Approve", h("span", { class: "visually-hidden" }, ` step ${step.id}`)),
        h("button", { type: "button", class: "danger", onclick: () => act("Reject", "POST", url, { approved: false }) },
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

  function draw() {
    status.replaceChildren("Status: ", statusBadge(execution.status));
    const buttons = [];
    if (!TERMINAL.has(execution.status)) {
      if (execution.status === "paused") {
        buttons.push(h("button", { type: "button", onclick: () => act("Resume", "POST", `${path}/resume`) }, "Resume"));
      } else {
        buttons.push(h("button", { type: "button", onclick: () => act("Pause", "POST", `${path}/pause`) }, "Pause"));
      }
      buttons.push(h("button", { type: "button", class: "danger", onclick: () => act("Cancel", "POST", `${path}/cancel`) }, "Cancel"));
    }
    if (execution.status === "failed" || execution.status === "cancelled") {
      buttons.push(h("button", { type: "button", onclick: () => act("Retry", "POST", `${path}/retry`) }, "Retry"));
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
      execution = (await api("GET", path)).body;
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
    if (event.seq <= lastSeq) return;
    lastSeq = event.seq;
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
    const token = accessToken();
    if (!token || closed) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws`, ["bearer", token]);
    socket.addEventListener("open", () => {
      retryDelay = 500;
      socket.send(JSON.stringify({ type: "subscribe", channel: `execution:${id}`, after: lastSeq }));
    });
    socket.addEventListener("message", (message) => {
      let frame;
      try {
        frame = JSON.parse(message.data);
      } catch {
        return;
      }
      if (frame.type === "subscribed") live.textContent = "Live updates on.";
      else if (frame.type === "message" && frame.data) onEvent(frame.data);
      else if (frame.type === "token") onToken(frame);
      else if (frame.type === "gap") later();
      else if (frame.type === "error") live.textContent = `Live updates: ${frame.message}`;
    });
    socket.addEventListener("close", async (close) => {
      socket = null;
      if (closed) return;
      live.textContent = "Live updates paused; reconnecting…";
      if (close.code === 4401) {
        try {
          await api("GET", "/api/v1/auth/me"); // refreshes the access token
        } catch {
          return;
        }
      }
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  ctx.onLeave(() => {
    closed = true;
    if (refreshTimer) clearTimeout(refreshTimer);
    if (socket) socket.close(1000);
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
    live,
    h("div", { class: "columns" }, steps, outputs),
    h("details", { class: "card" }, h("summary", {}, "Event log"), log),
  );
  connect();
}
