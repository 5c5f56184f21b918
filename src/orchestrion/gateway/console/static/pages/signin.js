import { signIn, signInWithCode, ssoLoginUrl, ssoProviders } from "../api.js";
import { h, replace } from "../dom.js";

// Where to go after a single sign-on: the provider returns to this page with no `next`
// (the return address must match the allow-list exactly), so it waits here meanwhile.
const NEXT = "orchestrion.sso-next";

function safeNext(next) {
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/workflows";
}

// Back from a provider: `?code=` to exchange (once: it is dropped from the address
// first, so a reload cannot present it again), or `?error=` to show.
async function returnFromProvider(ctx, params) {
  const code = params.get("code");
  const error = params.get("error");
  history.replaceState(null, "", "/sign-in");
  const next = safeNext(sessionStorage.getItem(NEXT));
  sessionStorage.removeItem(NEXT);
  if (error) {
    const why = params.get("error_description");
    const text = error === "access_denied" ? "Sign-in was cancelled at the provider." : `Sign-in failed: ${error}.`;
    ctx.showError(new Error(why ? `${text} ${why}` : text));
    return false;
  }
  try {
    await signInWithCode(code);
  } catch (failure) {
    ctx.showError(failure);
    return false;
  }
  ctx.navigate(next, { replaceState: true });
  return true;
}

export async function signInPage(ctx) {
  const main = document.getElementById("main");
  const params = new URLSearchParams(location.search);
  if ((params.has("code") || params.has("error")) && (await returnFromProvider(ctx, params))) return;
  const next = safeNext(new URLSearchParams(location.search).get("next"));
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
      ctx.navigate(next);
    } catch (error) {
      ctx.showError(error);
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  replace(main, h("h1", { id: "sign-in-title" }, "Sign in"), form);
  const providers = await ssoProviders();
  if (providers.length) {
    const returnTo = `${location.origin}/sign-in`;
    const links = providers.map((provider) =>
      h(
        "li",
        {},
        h(
          "a",
          {
            class: "button",
            href: ssoLoginUrl(provider.name, returnTo),
            onclick: () => sessionStorage.setItem(NEXT, next),
          },
          `Sign in with ${provider.display_name}`,
        ),
      ),
    );
    main.append(
      h(
        "nav",
        { class: "card narrow sso", "aria-label": "Single sign-on" },
        h("p", {}, "Or sign in with your organisation:"),
        h("ul", { class: "sso-list" }, links),
      ),
    );
  }
}
