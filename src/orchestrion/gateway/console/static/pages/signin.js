import { signIn } from "../api.js";
import { h, replace } from "../dom.js";

export async function signInPage(ctx) {
  const main = document.getElementById("main");
  const email = h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true });
  const password = h("input", {
    id: "password",
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "sign-in-title" },
    h("div", { class: "field" }, h("label", { for: "email" }, "Email"), email),
    h("div", { class: "field" }, h("label", { for: "password" }, "Password"), password),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    ctx.clearAlerts();
    button.disabled = true;
    try {
      await signIn(email.value, password.value);
      const next = new URLSearchParams(location.search).get("next");
      ctx.navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/workflows");
    } catch (error) {
      ctx.showError(error);
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, h("h1", { id: "sign-in-title" }, "Sign in"), form);
}
