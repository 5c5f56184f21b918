/**
 * Errors as RFC 9457 problems (`application/problem+json`), the shape every Orchestrion
 * service answers with (see docs/API.md, "Conventions").
 */

/** One error of a problem: where (`loc`) and what (`msg`). */
export interface ProblemDetailError {
  loc: (string | number)[];
  msg: string;
}

/** An RFC 9457 problem as the platform sends it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  request_id?: string | null;
  errors?: ProblemDetailError[];
  /** Extension members (e.g. `retry_after`) are kept as they came. */
  [extension: string]: unknown;
}

/** True when `value` has the members every problem carries. */
export function isProblem(value: unknown): value is Problem {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return (
    typeof candidate.type === "string" &&
    typeof candidate.title === "string" &&
    typeof candidate.status === "number"
  );
}

/**
 * A problem thrown by the SDK's helpers (`login`, `refresh`, `logout`, `unwrap`, the
 * streams). Typed calls through the client never throw for an HTTP error: they return it
 * as `error` (see README, "Errors").
 */
export class ProblemError extends Error {
  readonly problem: Problem;
  readonly status: number;
  readonly type: string;
  readonly title: string;
  readonly detail: string;
  readonly instance: string | undefined;
  readonly requestId: string | null | undefined;
  readonly errors: ProblemDetailError[];

  constructor(problem: Problem) {
    super(`${problem.status} ${problem.title}: ${problem.detail}`);
    this.name = "ProblemError";
    this.problem = problem;
    this.status = problem.status;
    this.type = problem.type;
    this.title = problem.title;
    this.detail = problem.detail;
    this.instance = problem.instance;
    this.requestId = problem.request_id;
    this.errors = problem.errors ?? [];
  }

  /** The problem an error `response` carries, or one made up from its status and text. */
  static async fromResponse(response: Response): Promise<ProblemError> {
    return new ProblemError(await problemOf(response));
  }
}

/** Read an error response as a problem; a body that is not one becomes its `detail`. */
export async function problemOf(response: Response): Promise<Problem> {
  const text = await response.text();
  try {
    const parsed: unknown = JSON.parse(text);
    if (isProblem(parsed)) return parsed;
  } catch {
    // not JSON: fall through
  }
  return synthesize(response, text);
}

/** A problem for an answer that did not carry one (a proxy's HTML page, an empty 502). */
export function synthesize(response: Response, text: string): Problem {
  return {
    type: "about:blank",
    title: response.statusText || `HTTP ${response.status}`,
    status: response.status,
    detail: text.trim().slice(0, 500) || `the server answered ${response.status} without a problem body`,
    instance: new URL(response.url || "http://invalid/").pathname,
    request_id: response.headers.get("x-request-id"),
    errors: [],
  };
}

/**
 * The same response, its body a problem+json document: error answers that are not JSON
 * (from a proxy, a load balancer) still reach the caller as a typed `Problem`.
 */
export async function asProblemResponse(response: Response): Promise<Response> {
  const kind = response.headers.get("content-type") ?? "";
  if (response.status < 400 || kind.includes("json")) return response;
  const problem = synthesize(response, await response.text());
  const headers = new Headers(response.headers);
  headers.set("content-type", "application/problem+json");
  headers.delete("content-length");
  return new Response(JSON.stringify(problem), {
    status: response.status,
    statusText: response.statusText,
    headers,
  });
}
