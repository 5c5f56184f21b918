// Notifications: the signed-in user's in-app inbox, newest first; unread messages can be
// marked read one by one.

import { client, get } from "../api.js";
import { h, replace, when } from "../dom.js";

function item(message, onRead) {
  const title = message.subject || message.body.slice(0, 60) || "(no subject)";
  const state = h("span", { class: `badge badge-${message.read ? "read" : "unread"}` }, message.read ? "Read" : "Unread");
  const button = message.read
    ? null
    : h("button", { type: "button", "aria-label": `Mark “${title}” read` }, "Mark read");
  const li = h("li", { class: `inbox-item${message.read ? "" : " unread"}`, "data-message": message.id, "data-read": String(message.read) },
    h("h2", {}, title, " ", state),
    message.subject ? h("p", {}, message.body) : null,
    h("p", { class: "meta" }, h("time", { datetime: message.created_at }, when(message.created_at)),
      message.read_at ? ` · read ${when(message.read_at)}` : ""),
    button);
  if (button) {
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        const updated = await onRead(message.id);
        const next = item(updated, onRead);
        li.replaceWith(next);
        next.querySelector("h2").setAttribute("tabindex", "-1");
        next.querySelector("h2").focus();
      } catch {
        button.disabled = false; // the error is shown in the alert region
      }
    });
  }
  return li;
}

export async function notificationsPage(ctx) {
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  const unreadOnly = params.get("read") === "false";
  const query = { limit: 100 };
  if (unreadOnly) query.read = false;
  const inbox = await get(client.GET("/api/v1/notifications/inbox", { params: { query } }));
  const status = h("p", { role: "status", class: "live", id: "inbox-status" });
  const onRead = async (id) => {
    try {
      const updated = await get(client.POST("/api/v1/notifications/inbox/{item_id}/read", { params: { path: { item_id: id } } }));
      status.textContent = "Marked read.";
      return updated;
    } catch (error) {
      ctx.showError(error);
      throw error;
    }
  };
  const unread = inbox.data.filter((m) => !m.read).length;
  replace(
    main,
    h("h1", {}, "Notifications"),
    h("p", {}, `${inbox.meta.total} message${inbox.meta.total === 1 ? "" : "s"}${unreadOnly ? " unread" : `, ${unread} unread on this page`}. `,
      unreadOnly ? h("a", { href: "/notifications" }, "Show all") : h("a", { href: "/notifications?read=false" }, "Show unread only")),
    status,
    inbox.data.length
      ? h("ul", { class: "inbox", "aria-label": "Inbox" }, inbox.data.map((m) => item(m, onRead)))
      : h("p", {}, "Nothing in your inbox."),
  );
}
