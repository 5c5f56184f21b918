// The console's shell: a client-side router over history.pushState, the header's
// navigation, the alert region and focus management on every page change.

import { client, get, session, signOut, whenSignedOut } from "./api.js";
import { h, replace } from "./dom.js";
import { signInPage } from "./pages/signin.js";
import { workflowsPage } from "./pages/workflows.js";
import { workflowPage } from "./pages/workflow.js";
import { executionPage } from "./pages/execution.js";
import { usagePage } from "./pages/usage.js";
import { analyticsPage } from "./pages/analytics.js";
import { notificationsPage } from "./pages/notifications.js";
import { contentPage, documentPage } from "./pages/content.js";
import { knowledgePage, nodePage } from "./pages/knowledge.js";
import { templatesPage, templatePage } from "./pages/templates.js";

const main = document.getElementById("main");
const alerts = document.getElementById("alerts");
const nav = document.getElementById("nav");
const who = document.getElementById("who");

const ROUTES = [
  [/^\/sign-in$/, signInPage, false],
  [/^\/workflows$/, workflowsPage, true],
  [/^\/workflows\/new$/, (ctx) => workflowPage(ctx, null), true],
  [/^\/workflows\/([^/]+)$/, (ctx, id) => workflowPage(ctx, decodeURIComponent(id)), true],
  [/^\/executions\/([^/]+)$/, (ctx, id) => executionPage(ctx, decodeURIComponent(id)), true],
  [/^\/usage$/, usagePage, true],
  [/^\/analytics$/, analyticsPage, true],
  [/^\/notifications$/, notificationsPage, true],
  [/^\/content$/, contentPage, true],
  [/^\/content\/([^/]+)$/, (ctx, id) => documentPage(ctx, decodeURIComponent(id)), true],
  [/^\/knowledge$/, knowledgePage, true],
  [/^\/knowledge\/([^/]+)$/, (ctx, id) => nodePage(ctx, decodeURIComponent(id)), true],
  [/^\/templates$/, templatesPage, true],
  [/^\/templates\/([^/]+)$/, (ctx, id) => templatePage(ctx, decodeURIComponent(id)), true],
];

let cleanup = null;

export function showError(error) {
  const text = error && error.message ? error.message : String(error);
  replace(alerts, h("p", { class: "alert-error" }, text));
}

export function clearAlerts() {
  replace(alerts);
}

export function navigate(path, { replaceState = false } = {}) {
  if (replaceState) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  render();
}

async function showIdentity() {
  if (!session()) {
    nav.hidden = true;
    return;
  }
  nav.hidden = false;
  try {
    const me = await get(client.GET("/api/v1/auth/me"));
    who.textContent = me.email;
  } catch {
    who.textContent = "";
  }
}

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  clearAlerts();
  let path = location.pathname.replace(/\/+$/, "") || "/";
  if (path === "/") {
    history.replaceState(null, "", "/workflows");
    path = "/workflows";
  }
  let match = null;
  for (const [pattern, page, needsSession] of ROUTES) {
    const found = pattern.exec(path);
    if (found) {
      match = { page, args: found.slice(1), needsSession };
      break;
    }
  }
  if (match && match.needsSession && !session()) {
    const back = encodeURIComponent(location.pathname + location.search);
    history.replaceState(null, "", `/sign-in?next=${back}`);
    return render();
  }
  showIdentity();
  for (const link of nav.querySelectorAll("ul a")) {
    const here = path === link.pathname || path.startsWith(`${link.pathname}/`);
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const ctx = {
    navigate,
    showError,
    clearAlerts,
    onLeave(callback) {
      cleanup = callback;
    },
  };
  replace(main, h("p", {}, "Loading…"));
  try {
    if (!match) {
      document.title = "Not found · Orchestrion";
      replace(main, h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, `Nothing at ${path}.`));
    } else {
      await match.page(ctx, ...match.args);
    }
  } catch (error) {
    showError(error);
  }
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
    document.title = `${heading.textContent} · Orchestrion`;
  }
}

// Same-origin links are followed by the router (modifier clicks open tabs as usual).
document.addEventListener("click", (event) => {
  const link = event.target.closest("a[href]");
  if (!link || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  if (link.hash && url.pathname === location.pathname) return;
  event.preventDefault();
  navigate(url.pathname + url.search);
});

window.addEventListener("popstate", render);

document.getElementById("sign-out").addEventListener("click", async () => {
  await signOut();
  navigate("/sign-in");
});

whenSignedOut(() => {
  if (!location.pathname.startsWith("/sign-in")) navigate("/sign-in");
});

render();
