// The HTTP client: bearer token in sessionStorage, one refresh on a 401, problems
// (application/problem+json) raised as ApiError.

const STORE = "orchestrion.session";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
    this.errors = (problem && problem.errors) || [];
  }
}

export function session() {
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

let onSignedOut = () => {};
export function whenSignedOut(callback) {
  onSignedOut = callback;
}

async function parse(response) {
  const type = response.headers.get("content-type") || "";
  if (response.status === 204 || response.status === 304) return null;
  if (type.includes("json")) return response.json();
  return response.text();
}

async function send(method, path, { body, contentType, headers = {}, auth = true } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers } };
  const current = session();
  if (auth && current) init.headers.Authorization = `Bearer ${current.access_token}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = contentType || "application/json";
    init.body = typeof body === "string" ? body : JSON.stringify(body);
  }
  return fetch(path, init);
}

let refreshing = null;

async function refresh() {
  const current = session();
  if (!current || !current.refresh_token) return false;
  if (!refreshing) {
    refreshing = (async () => {
      const response = await send("POST", "/api/v1/auth/refresh", {
        body: { refresh_token: current.refresh_token },
        auth: false,
      });
      if (!response.ok) return false;
      save(await response.json());
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/** Call the API; answers `{status, headers, body}` or throws an ApiError. */
export async function api(method, path, options = {}) {
  let response = await send(method, path, options);
  if (response.status === 401 && options.auth !== false && session()) {
    if (await refresh()) {
      response = await send(method, path, options);
    }
    if (response.status === 401) {
      save(null);
      onSignedOut();
    }
  }
  const body = await parse(response);
  if (!response.ok && response.status !== 304) {
    throw new ApiError(response.status, typeof body === "object" ? body : { detail: body });
  }
  return { status: response.status, headers: response.headers, body };
}

export async function signIn(email, password) {
  const { body } = await api("POST", "/api/v1/auth/login", {
    body: { email, password },
    auth: false,
  });
  save(body);
  return body;
}

export async function signOut() {
  try {
    if (session()) await api("POST", "/api/v1/auth/logout");
  } catch {
    // The session is forgotten here whatever the server says.
  } finally {
    save(null);
  }
}

/** A fresh access token for a socket (refreshing first if the current one is refused). */
export function accessToken() {
  const current = session();
  return current ? current.access_token : null;
}
