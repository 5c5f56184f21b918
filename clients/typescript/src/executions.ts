/**
 * The execution stream, `GET /api/v1/executions/{id}/stream` (Server-Sent Events).
 *
 * Each event of the execution's log arrives as an SSE event whose `id:` is its `seq` and
 * whose `event:` is its type; LLM output arrives as `event: token` (not stored, no id).
 * The server ends the stream after the terminal event (`execution.succeeded`, `.failed`,
 * `.cancelled`). When the connection drops before that, the helper reconnects and resumes
 * with `Last-Event-ID` (the last `seq` seen), so no event is lost or repeated.
 */

import { ProblemError } from "./problem.js";
import type { paths } from "./schema.js";

/** One entry of an execution's log (as `GET /api/v1/executions/{id}/events` lists them). */
export type ExecutionEvent =
  paths["/api/v1/executions/{execution_id}/events"]["get"]["responses"][200]["content"]["application/json"]["data"][number];

/** What the stream yields: a stored event, or a chunk of an LLM step's output. */
export type ExecutionStreamItem =
  | { kind: "event"; event: ExecutionEvent }
  | { kind: "token"; step_id: string | null; text: string };

/** The event types after which the server closes the stream. */
export const TERMINAL_EVENTS: readonly string[] = [
  "execution.succeeded",
  "execution.failed",
  "execution.cancelled",
];

/** What {@link streamExecution} needs of a client (an `OrchestrionClient` has it all). */
export interface StreamSource {
  readonly baseUrl: string;
  authFetch(input: Request): Promise<Response>;
}

export interface StreamOptions {
  /** Start after this `seq` (default 0: the whole log). */
  after?: number;
  /** Stop the stream (the iterator then ends without error). */
  signal?: AbortSignal;
  /** Reconnections allowed in a row without progress before giving up (default 5). */
  maxRetries?: number;
  /** First reconnection delay in ms, doubled each time with jitter (default 500). */
  retryDelayMs?: number;
}

interface RawEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/** Parse a `text/event-stream` body into events (the WHATWG algorithm, minus `retry`). */
export async function* parseEventStream(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<RawEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let data: string[] = [];
  let event = "";
  let id: string | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        if (newline === buffer.length - 1 && buffer.endsWith("\r")) break; // maybe "\r\n" split
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + (buffer.startsWith("\r\n", newline) ? 2 : 1));
        if (line === "") {
          if (data.length > 0) yield { id, event: event || "message", data: data.join("\n") };
          data = [];
          event = "";
          id = undefined;
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "data") data.push(value);
        else if (field === "event") event = value;
        else if (field === "id" && !value.includes("\0")) id = value;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/**
 * Watch an execution: its events (and LLM tokens) until the terminal event.
 *
 * ```ts
 * for await (const item of streamExecution(api, executionId)) {
 *   if (item.kind === "token") process.stdout.write(item.text);
 *   else console.log(item.event.seq, item.event.type);
 * }
 * ```
 *
 * Throws {@link ProblemError} when the server refuses the stream (404, 401, ...), and
 * after `maxRetries` failed reconnections in a row.
 */
export async function* streamExecution(
  source: StreamSource,
  executionId: string,
  options: StreamOptions = {},
): AsyncGenerator<ExecutionStreamItem, void, undefined> {
  let last = options.after ?? 0;
  const maxRetries = options.maxRetries ?? 5;
  const base = options.retryDelayMs ?? 500;
  let failures = 0;
  let lastError: unknown;
  const url = `${source.baseUrl}/api/v1/executions/${encodeURIComponent(executionId)}/stream`;
  while (!options.signal?.aborted) {
    let progressed = false;
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      if (last > 0) headers["Last-Event-ID"] = String(last);
      const request = new Request(url, { headers, signal: options.signal ?? null });
      const response = await source.authFetch(request);
      if (!response.ok) throw await ProblemError.fromResponse(response);
      if (response.body === null) throw new Error("the stream answered without a body");
      for await (const raw of parseEventStream(response.body)) {
        if (raw.event === "token") {
          const token = JSON.parse(raw.data) as { step_id?: string | null; text: string };
          yield { kind: "token", step_id: token.step_id ?? null, text: token.text };
          continue;
        }
        const event = JSON.parse(raw.data) as ExecutionEvent;
        if (event.seq <= last) continue; // already seen (a resumed stream never repeats, but be sure)
        last = event.seq;
        progressed = true;
        failures = 0;
        yield { kind: "event", event };
        if (TERMINAL_EVENTS.includes(event.type)) return;
      }
      // The body ended without the terminal event: the connection was cut. Resume.
    } catch (error) {
      if (options.signal?.aborted) return;
      if (error instanceof ProblemError && error.status < 500 && error.status !== 429) throw error;
      lastError = error;
    }
    if (!progressed) {
      failures += 1;
      if (failures > maxRetries) {
        throw lastError ?? new Error(`the stream of ${executionId} ended ${failures} times without news`);
      }
      const delay = Math.min(base * 2 ** Math.max(0, failures - 1), 30_000);
      await sleep(delay / 2 + Math.random() * (delay / 2), options.signal);
    }
  }
}

/** The same stream as a class, for code that wants `close()` rather than an `AbortSignal`. */
export class ExecutionStream implements AsyncIterable<ExecutionStreamItem> {
  private readonly controller = new AbortController();

  constructor(
    private readonly source: StreamSource,
    private readonly executionId: string,
    private readonly options: Omit<StreamOptions, "signal"> = {},
  ) {}

  [Symbol.asyncIterator](): AsyncIterator<ExecutionStreamItem> {
    return streamExecution(this.source, this.executionId, {
      ...this.options,
      signal: this.controller.signal,
    })[Symbol.asyncIterator]();
  }

  close(): void {
    this.controller.abort();
  }
}
