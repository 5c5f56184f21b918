// Analytics: the projections of the analytics service over a time range, by hour or by
// day: summary figures, charts of executions (succeeded and failed), failures and cost,
// the per-workflow rows and the SLOs with whether each is met.

import { client, get } from "../api.js";
import { chart } from "../chart.js";
import { h, replace, select } from "../dom.js";

const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;
// Default ranges: the last day by hour, the last 30 days by day (as the API's series).
const SPAN = { hour: 24 * HOUR, day: 30 * DAY };

/** `2026-12-03T14:00` (a `datetime-local` value, read as UTC) of a Date. */
function local(date) {
  return date.toISOString().slice(0, 16);
}

/** The Date of a `datetime-local` value read as UTC; null for anything else (V8's
 * Date parser would take even an empty string plus `:00Z` for 2000-01-01). */
function utc(value) {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$/.test(value)) return null;
  const date = new Date(`${value}:00Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** The range the page shows: from the query string, else the default for `interval`. */
export function range(params) {
  const interval = params.get("interval") === "day" ? "day" : "hour";
  const unit = interval === "day" ? DAY : HOUR;
  const now = Date.now();
  let to = utc(params.get("to") || "");
  if (!to) to = new Date(Math.floor(now / unit) * unit + unit);
  let from = utc(params.get("from") || "");
  if (!from) from = new Date(to.getTime() - SPAN[interval]);
  return { interval, from, to };
}

const count = (value) => String(Math.round(value));
const money = (value) => `$${Number(value || 0).toFixed(value && Math.abs(value) < 0.01 ? 6 : 2)}`;
const percent = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`);
const ms = (value) => (value === null || value === undefined ? "—" : `${Math.round(value)} ms`);

function summaryFacts(summary) {
  const e = summary.executions;
  const facts = [
    ["Executions", count(e.total)],
    ["Succeeded", count(e.succeeded)],
    ["Failed", count(e.failed)],
    ["Cancelled", count(e.cancelled)],
    ["Success rate", percent(e.success_rate)],
    ["Duration p50 / p95 / p99", `${ms(summary.duration_ms.p50)} / ${ms(summary.duration_ms.p95)} / ${ms(summary.duration_ms.p99)}`],
    ["Steps (failed)", `${count(summary.steps.total)} (${count(summary.steps.failed)})`],
    ["Tokens in / out", `${count(summary.tokens.input)} / ${count(summary.tokens.output)}`],
    ["Cost", money(summary.cost_usd)],
  ];
  return h("section", { class: "card", "aria-labelledby": "summary-heading" },
    h("h2", { id: "summary-heading" }, "Summary"),
    h("dl", { class: "facts", id: "analytics-summary" },
      facts.flatMap(([term, value]) => [h("dt", {}, term), h("dd", { "data-fact": term }, value)])));
}

function workflowRows(rows, names) {
  const body = rows.map((row) => h("tr", { "data-workflow": row.workflow_id },
    h("th", { scope: "row" }, h("a", { href: `/workflows/${encodeURIComponent(row.workflow_id)}` }, names.get(row.workflow_id) || row.workflow_id)),
    h("td", { class: "num" }, count(row.executions.total)),
    h("td", { class: "num" }, count(row.executions.succeeded)),
    h("td", { class: "num" }, count(row.executions.failed)),
    h("td", { class: "num" }, percent(row.executions.success_rate)),
    h("td", { class: "num" }, ms(row.duration_ms.p95)),
    h("td", { class: "num" }, money(row.cost_usd))));
  return h("table", { id: "analytics-workflows" },
    h("caption", {}, "Per workflow"),
    h("thead", {}, h("tr", {}, ["Workflow", "Executions", "Succeeded", "Failed", "Success rate", "p95", "Cost"].map((t, i) => h("th", { scope: "col", class: i ? "num" : null }, t)))),
    h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: "7" }, "No executions in this range."))));
}

function sloTarget(slo) {
  return slo.objective === "success_rate" ? percent(slo.target) : ms(slo.target);
}

function sloCurrent(slo) {
  return slo.objective === "success_rate" ? percent(slo.current) : ms(slo.current);
}

function sloList(slos, names) {
  const body = slos.map((slo) => h("tr", { "data-slo": slo.id, "data-met": String(slo.met) },
    h("th", { scope: "row" }, slo.name),
    h("td", {}, slo.workflow_id ? names.get(slo.workflow_id) || slo.workflow_id : "All workflows"),
    h("td", {}, slo.objective === "success_rate" ? "Success rate" : "p95 duration"),
    h("td", { class: "num" }, sloTarget(slo)),
    h("td", {}, slo.window),
    h("td", { class: "num" }, sloCurrent(slo)),
    h("td", {}, h("span", { class: `badge badge-${slo.met ? "succeeded" : "failed"}` }, slo.met ? "Met" : "Not met")),
    h("td", { class: "num" }, percent(slo.error_budget_remaining))));
  return h("table", { id: "analytics-slos" },
    h("caption", {}, "Service level objectives (over each one's sliding window, up to now)"),
    h("thead", {}, h("tr", {}, ["SLO", "Workflow", "Objective", "Target", "Window", "Current", "Status", "Error budget left"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: "8" }, "No SLOs yet."))));
}

export async function analyticsPage(ctx) {
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const { interval, from, to } = range(params);

  const intervalInput = select({ id: "analytics-interval", name: "interval" }, [["hour", "By hour"], ["day", "By day"]], interval);
  const fromInput = h("input", { id: "analytics-from", name: "from", type: "datetime-local", value: local(from), required: true });
  const toInput = h("input", { id: "analytics-to", name: "to", type: "datetime-local", value: local(to), required: true });
  const form = h("form", { class: "filters", "aria-label": "Range" },
    h("div", { class: "field" }, h("label", { for: "analytics-interval" }, "Interval"), intervalInput),
    h("div", { class: "field" }, h("label", { for: "analytics-from" }, "From (UTC)"), fromInput),
    h("div", { class: "field" }, h("label", { for: "analytics-to" }, "To (UTC)"), toInput),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams({ interval: intervalInput.value, from: fromInput.value, to: toInput.value });
    ctx.navigate(`/analytics?${query}`);
  });
  // Switching the interval alone starts over with that interval's default range.
  intervalInput.addEventListener("change", () => ctx.navigate(`/analytics?interval=${intervalInput.value}`));

  const span = { from: from.toISOString(), to: to.toISOString() };
  const series = (metric) => get(client.GET("/api/v1/analytics/timeseries", { params: { query: { metric, interval, ...span } } }));
  const [summary, rows, slos, workflows, executions, succeeded, failures, cost] = await Promise.all([
    get(client.GET("/api/v1/analytics/summary", { params: { query: span } })),
    get(client.GET("/api/v1/analytics/workflows", { params: { query: { ...span, limit: 100, sort: "executions:desc" } } })),
    get(client.GET("/api/v1/analytics/slos")),
    get(client.GET("/api/v1/workflows", { params: { query: { limit: 100, fields: "id,name" } } })),
    series("executions"),
    series("succeeded"),
    series("failures"),
    series("cost_usd"),
  ]);
  const names = new Map(workflows.data.map((w) => [w.id, w.name]));
  // Executions neither succeeded nor failed (running, waiting, cancelled) stack on top.
  const other = executions.data.map((p, i) => ({
    at: p.at, value: Math.max(0, p.value - succeeded.data[i].value - failures.data[i].value),
  }));
  replace(
    main,
    h("h1", {}, "Analytics"),
    h("p", {}, "Executions, failures and cost from the analytics projections (they follow the executions within seconds). Times are UTC."),
    form,
    summaryFacts(summary),
    chart({
      id: "chart-executions", title: "Executions", interval, format: count, integer: true,
      series: [
        { key: "succeeded", name: "Succeeded", points: succeeded.data },
        { key: "failed", name: "Failed", points: failures.data },
        { key: "other", name: "Other (running, cancelled…)", points: other },
      ],
    }),
    chart({
      id: "chart-failures", title: "Failures", interval, format: count, integer: true,
      series: [{ key: "failed", name: "Failed", points: failures.data }],
    }),
    chart({
      id: "chart-cost", title: "Cost (USD)", interval, kind: "line", format: money,
      series: [{ key: "cost", name: "Cost", points: cost.data }],
    }),
    h("section", { "aria-labelledby": "workflows-heading" }, h("h2", { id: "workflows-heading" }, "Workflows"), workflowRows(rows.data, names)),
    h("section", { "aria-labelledby": "slos-heading" }, h("h2", { id: "slos-heading" }, "SLOs"), sloList(slos.data, names)),
  );
}
