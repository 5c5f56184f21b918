// The console's API client: the SDK (@orchestrion/sdk, bundled as vendor/sdk.js by
// `npm run build:console`), its token pair kept in sessionStorage. The SDK refreshes an
// expired access token once on a 401 (one refresh shared by concurrent calls) and replays
// the call; a call still refused means the session is over and the console signs out.

import { createClient, openRealtime } from "./vendor/sdk.js";

const STORE = "orchestrion.session";

/** An error answer (an RFC 9457 problem), thrown by {@link call}. */
export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.errors = (problem && problem.errors) || [];
  }
}

function stored() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

function save(tokens) {
  if (tokens) sessionStorage.setItem(STORE, JSON.stringify(tokens));
  else sessionStorage.removeItem(STORE);
}

/** The typed SDK client every page calls through (`client.GET("/api/v1/...", {...})`). */
export const client = createClient({ baseUrl: location.origin, onTokens: save });
client.setTokens(stored());

let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

/** The pair held now (restored from sessionStorage when the page loads). */
export function session() {
  return client.tokens();
}

function ended() {
  client.setTokens(null);
  onSignedOut();
}

/**
 * Await a typed call: `{data, response}`, or an {@link ApiError} thrown for an error
 * answer. A 401 left after the SDK's refresh ends the session.
 */
export async function call(pending) {
  const { data, error, response } = await pending;
  if (response.ok) return { data, response };
  if (response.status === 401 && session()) ended();
  throw new ApiError(response.status, error);
}

/** `call` for code that only wants the data. */
export async function get(pending) {
  return (await call(pending)).data;
}

export async function signIn(email, password) {
  try {
    return await client.login(email, password);
  } catch (error) {
    if (error && error.problem) throw new ApiError(error.status, error.problem);
    throw error;
  }
}

/** The identity providers to offer ("Sign in with ..."); none when the call fails. */
export async function ssoProviders() {
  try {
    const { data, response } = await client.GET("/api/v1/auth/sso/providers");
    return response.ok && data ? data.data : [];
  } catch {
    return [];
  }
}

/** Where a "Sign in with <provider>" button goes: the provider, then back to `returnTo`. */
export function ssoLoginUrl(name, returnTo) {
  const query = new URLSearchParams({ redirect_uri: returnTo });
  return `/api/v1/auth/sso/${encodeURIComponent(name)}/login?${query}`;
}

/** Exchange the one-time code a single sign-on returned with, once, for the session. */
export async function signInWithCode(code) {
  const { data, error, response } = await client.POST("/api/v1/auth/sso/exchange", {
    body: { code },
  });
  if (!response.ok || !data) throw new ApiError(response.status, error);
  client.setTokens(data);
  return data;
}

export async function signOut() {
  try {
    if (session()) await client.logout();
  } catch {
    // The session is forgotten (by the SDK) whatever the server says.
  } finally {
    save(null);
  }
}

/**
 * The realtime socket as this session (subprotocol `bearer, <token>`), resuming each
 * channel after its last seq; a `4401` close refreshes the access token and reconnects,
 * and a refresh that fails too ends the session.
 */
export function realtime(options = {}) {
  return openRealtime(client, {
    auth: "subprotocol",
    initialDelayMs: 500,
    maxDelayMs: 10000,
    ...options,
    onState(state, detail) {
      if (state === "closed" && detail && detail.code === 4401 && !session()) ended();
      if (options.onState) options.onState(state, detail);
    },
  });
}
