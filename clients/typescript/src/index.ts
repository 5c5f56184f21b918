/**
 * `@orchestrion/sdk`: a typed client for the Orchestrion API.
 *
 * Requests go through openapi-fetch over the types generated from the platform's
 * `/openapi.json` (`src/schema.d.ts`): paths, parameters, bodies and answers are checked
 * by the compiler. On top of it: the login/refresh/logout cycle (an access token that
 * expires is refreshed once, on the 401, and the request replayed), API keys, and errors
 * as typed problems.
 */

import createOpenApiClient, { type Client, type FetchResponse } from "openapi-fetch";

import { asProblemResponse, isProblem, ProblemError, synthesize } from "./problem.js";
import { connectRealtime, type RealtimeClient, type RealtimeOptions } from "./realtime.js";
import type { paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";
export { isProblem, ProblemError, problemOf } from "./problem.js";
export type { Problem, ProblemDetailError } from "./problem.js";

/** `POST /api/v1/auth/login`'s answer: the token pair. */
export type TokenPair =
  paths["/api/v1/auth/login"]["post"]["responses"][200]["content"]["application/json"];

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The gateway, e.g. `http://127.0.0.1:8000` (no trailing `/api`). */
  baseUrl: string;
  /** An access token to start with (e.g. one kept from an earlier session). */
  token?: string;
  /** The refresh token that goes with `token`, so it can be renewed on a 401. */
  refreshToken?: string;
  /** An API key (`orn_...`), sent as `X-API-Key`; used when no access token is held. */
  apiKey?: string;
  /** The `fetch` to use (default `globalThis.fetch`). */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
  /** Called whenever the token pair changes (login, refresh, logout: `null`), to persist it. */
  onTokens?: (tokens: TokenPair | null) => void;
}

/** The auth helpers {@link createClient} adds to the openapi-fetch client. */
export interface AuthHelpers {
  /** Log in; the pair is kept and sent from now on. Throws {@link ProblemError} (401 on bad credentials). */
  login(email: string, password: string): Promise<TokenPair>;
  /** Exchange the refresh token for a new pair now. Throws {@link ProblemError}. */
  refresh(): Promise<TokenPair>;
  /** End the session on the server and forget the pair. Throws {@link ProblemError}. */
  logout(): Promise<void>;
  /** The pair held now (`refresh_token` empty when only an access token was given). */
  tokens(): TokenPair | null;
  /** Replace the held pair (e.g. restored from storage), or drop it with `null`. */
  setTokens(tokens: TokenPair | null): void;
  /** The credential a WebSocket or stream should present: the access token, else the API key. */
  credential(): string | undefined;
  /** `fetch` with this client's credentials, problem normalisation and refresh-on-401. */
  authFetch(input: Request): Promise<Response>;
  /** The gateway's base URL, without a trailing slash. */
  readonly baseUrl: string;
}

/** The typed client: every openapi-fetch method (`GET`, `POST`, ...) plus {@link AuthHelpers}. */
export type OrchestrionClient = Client<paths> & AuthHelpers;

const NO_REFRESH = ["/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout"];

/**
 * A client for the gateway at `baseUrl`.
 *
 * ```ts
 * const api = createClient({ baseUrl: "http://127.0.0.1:8000" });
 * await api.login("admin@example.com", "secret");
 * const { data, error } = await api.GET("/api/v1/workflows/{workflow_id}", {
 *   params: { path: { workflow_id: id } },
 * });
 * ```
 */
export function createClient(options: ClientOptions): OrchestrionClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const baseFetch = options.fetch ?? ((input: Request) => globalThis.fetch(input));
  let pair: TokenPair | null = options.token
    ? {
        access_token: options.token,
        refresh_token: options.refreshToken ?? "",
        token_type: "Bearer",
        expires_in: 0,
      }
    : null;
  let refreshing: Promise<TokenPair> | null = null;

  const setTokens = (tokens: TokenPair | null): void => {
    pair = tokens;
    options.onTokens?.(tokens);
  };

  const authorize = (request: Request): Request => {
    const headers = new Headers(request.headers);
    if (pair?.access_token) headers.set("Authorization", `Bearer ${pair.access_token}`);
    else if (options.apiKey) headers.set("X-API-Key", options.apiKey);
    return new Request(request, { headers });
  };

  // Login and refresh go out without credentials and are never retried.
  const bare = createOpenApiClient<paths>({
    baseUrl,
    headers: options.headers,
    fetch: async (input) => asProblemResponse(await baseFetch(input)),
  });

  const refresh = (): Promise<TokenPair> => {
    if (refreshing) return refreshing;
    const token = pair?.refresh_token;
    if (!token) {
      return Promise.reject(
        new ProblemError({
          type: "about:blank",
          title: "Unauthorized",
          status: 401,
          detail: "no refresh token is held: log in first",
        }),
      );
    }
    refreshing = (async () => {
      const { data, error, response } = await bare.POST("/api/v1/auth/refresh", {
        body: { refresh_token: token },
      });
      if (data === undefined) {
        if (response.status === 401) setTokens(null);
        throw new ProblemError(isProblem(error) ? error : synthesize(response, ""));
      }
      setTokens(data);
      return data;
    })().finally(() => {
      refreshing = null;
    });
    return refreshing;
  };

  const authFetch = async (input: Request): Promise<Response> => {
    const path = new URL(input.url).pathname;
    const canRefresh = Boolean(pair?.refresh_token) && !NO_REFRESH.includes(path);
    // Keep a copy of the body: the first attempt consumes it.
    const spare = canRefresh ? input.clone() : null;
    const sentWith = pair?.access_token;
    const response = await baseFetch(authorize(input));
    if (response.status !== 401 || spare === null) return asProblemResponse(response);
    try {
      // Another request may have refreshed meanwhile: use its pair rather than rotating again.
      if (pair?.access_token === sentWith) await refresh();
    } catch {
      return asProblemResponse(response);
    }
    await response.body?.cancel();
    return asProblemResponse(await baseFetch(authorize(spare)));
  };

  const client = createOpenApiClient<paths>({
    baseUrl,
    headers: options.headers,
    fetch: authFetch,
  });

  const helpers: AuthHelpers = {
    baseUrl,
    async login(email, password) {
      const { data, error, response } = await bare.POST("/api/v1/auth/login", {
        body: { email, password },
      });
      if (data === undefined) {
        throw new ProblemError(isProblem(error) ? error : synthesize(response, ""));
      }
      setTokens(data);
      return data;
    },
    refresh,
    async logout() {
      const refreshToken = pair?.refresh_token;
      try {
        const { error, response } = await client.POST("/api/v1/auth/logout", {
          body: refreshToken ? { refresh_token: refreshToken } : undefined,
        });
        if (!response.ok) {
          throw new ProblemError(isProblem(error) ? error : synthesize(response, ""));
        }
      } finally {
        setTokens(null);
      }
    },
    tokens: () => pair,
    setTokens,
    credential: () => pair?.access_token || options.apiKey,
    authFetch,
  };
  return Object.assign(client, helpers);
}

/**
 * The data of a typed call's result, or a thrown {@link ProblemError}: for code that
 * prefers exceptions to checking `error`.
 *
 * ```ts
 * const workflow = await unwrap(api.POST("/api/v1/workflows", { body: definition }));
 * ```
 */
export async function unwrap<T extends Record<string | number, any>, O, M extends `${string}/${string}`>(
  result: Promise<FetchResponse<T, O, M>> | FetchResponse<T, O, M>,
): Promise<Exclude<FetchResponse<T, O, M>["data"], undefined>> {
  const settled = await result;
  if (settled.error !== undefined || !settled.response.ok) {
    const error: unknown = settled.error;
    throw new ProblemError(
      isProblem(error) ? error : synthesize(settled.response, JSON.stringify(error ?? "")),
    );
  }
  return settled.data as Exclude<FetchResponse<T, O, M>["data"], undefined>;
}

export { ExecutionStream, streamExecution } from "./executions.js";
export type { ExecutionEvent, ExecutionStreamItem, StreamOptions } from "./executions.js";
export { connectRealtime, RealtimeClient } from "./realtime.js";
export type {
  Channel,
  ClientFrame,
  ErrorFrame,
  GapFrame,
  MessageData,
  MessageFrame,
  PresenceFrame,
  PresenceState,
  RealtimeOptions,
  RealtimeState,
  ServerFrame,
  SubscribedFrame,
  TokenFrame,
  TokenReason,
  WebSocketConstructor,
  WebSocketLike,
  WelcomeFrame,
} from "./realtime.js";

/**
 * A realtime connection authenticated as `client`: its access token (or API key), and
 * after a `4401` close a refreshed token when the client holds a refresh token.
 */
export function openRealtime(
  client: OrchestrionClient,
  options: Omit<RealtimeOptions, "token" | "baseUrl"> = {},
): RealtimeClient {
  return connectRealtime({
    baseUrl: client.baseUrl,
    ...options,
    token: async (reason) => {
      if (reason === "unauthorized" && client.tokens()?.refresh_token) {
        try {
          await client.refresh();
        } catch {
          return undefined;
        }
      }
      return client.credential();
    },
  });
}
