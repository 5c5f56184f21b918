/**
 * The realtime WebSocket, `GET /ws` (docs/realtime.md): one socket carries every channel.
 *
 * This helper authenticates (first frame `{"type": "auth"}` by default, or the subprotocol
 * pair `bearer, <token>`), waits for `welcome`, (re)subscribes, remembers the last `seq` of
 * each channel and, after a reconnection, subscribes again with `after` so missed messages
 * are replayed in order, exactly once. It reconnects with exponential backoff and full
 * jitter, asks for a fresh token after a `4401`, and pings to keep the heartbeat.
 */

import type { ExecutionEvent } from "./executions.js";

/** A channel: `execution:<id>`, `workflow:<id>`, `user:<id>`, `tenant` or `room:<name>`. */
export type Channel =
  | `execution:${string}`
  | `workflow:${string}`
  | `user:${string}`
  | "tenant"
  | `room:${string}`;

export type PresenceState = "online" | "away" | "typing";
export type Ref = string | number;

/** Frames a client sends. */
export type ClientFrame =
  | { type: "auth"; token: string; ref?: Ref }
  | { type: "subscribe"; channel: Channel; after?: number; ref?: Ref }
  | { type: "unsubscribe"; channel: Channel; ref?: Ref }
  | { type: "publish"; channel: Channel; data: unknown; ref?: Ref }
  | { type: "presence"; channel: Channel; state: PresenceState; ref?: Ref }
  | { type: "ping"; ref?: Ref };

/** The `data` of a message: on `execution:` channels the execution event itself. */
export type MessageData<C extends string> = C extends `execution:${string}` ? ExecutionEvent : unknown;

export interface WelcomeFrame { type: "welcome"; connection_id: string; ref?: Ref }
export interface SubscribedFrame { type: "subscribed"; channel: Channel; seq: number; ref?: Ref }
export interface UnsubscribedFrame { type: "unsubscribed"; channel: Channel; ref?: Ref }
export interface MessageFrame<C extends string = Channel> {
  type: "message";
  channel: C;
  seq: number;
  data: MessageData<C>;
  ref?: Ref;
}
export interface GapFrame { type: "gap"; channel: Channel; from: number; to: number }
export interface PresenceFrame {
  type: "presence";
  channel: Channel;
  members: { user_id: string; state: PresenceState }[];
  ref?: Ref;
}
export interface TokenFrame { type: "token"; channel: Channel; step_id: string | null; text: string }
export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
  ref?: Ref;
  retry_after?: number;
}
export interface PongFrame { type: "pong"; ref?: Ref }

/** Frames the server sends. */
export type ServerFrame =
  | WelcomeFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | MessageFrame
  | GapFrame
  | PresenceFrame
  | TokenFrame
  | ErrorFrame
  | PongFrame;

/** Why a credential is asked for: the first connection, or after a `4401` close. */
export type TokenReason = "connect" | "unauthorized";

/** The connection's state, as reported to `onState`. */
export type RealtimeState = "connecting" | "open" | "reconnecting" | "closed";

/** The part of the WebSocket API used here (the browser's, Node 22's, or `ws`'s). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface RealtimeOptions {
  /** The gateway (`http://...`, turned into `ws://.../ws`), or `url` for the socket itself. */
  baseUrl?: string;
  url?: string;
  /** The credential (JWT or `orn_...` key), or a function giving one (asked again after 4401). */
  token: string | ((reason: TokenReason) => string | undefined | Promise<string | undefined>);
  /** `frame` (default): `{"type": "auth"}` first; `subprotocol`: `["bearer", token]`. */
  auth?: "frame" | "subprotocol";
  /** The WebSocket class (default `globalThis.WebSocket`; pass `ws`'s on Node < 22). */
  WebSocket?: WebSocketConstructor;
  /** First reconnection delay (ms, default 500), doubled per failure up to `maxDelayMs` (30 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
  /** Ping period (ms, default 25 000; the server drops sockets silent for 60 s). */
  pingIntervalMs?: number;
  onState?: (state: RealtimeState, detail?: { code?: number; reason?: string }) => void;
  onError?: (frame: ErrorFrame) => void;
  onGap?: (frame: GapFrame) => void;
  onPresence?: (frame: PresenceFrame) => void;
  onToken?: (frame: TokenFrame) => void;
  /** Every frame, before the handlers above. */
  onFrame?: (frame: ServerFrame) => void;
}

type Handler = (frame: MessageFrame<any>) => void;

interface Subscription {
  handlers: Set<Handler>;
  /** The last seq delivered (resume point), or undefined before anything arrived. */
  last: number | undefined;
}

/** Close codes after which reconnecting would not help. */
const FINAL_CLOSES = new Set([4429]);

/** A reconnecting, resuming realtime connection. Start it with {@link connectRealtime}. */
export class RealtimeClient {
  private socket: WebSocketLike | null = null;
  private readonly channels = new Map<Channel, Subscription>();
  private attempts = 0;
  private stopped = false;
  private ready = false;
  private unauthorized = false;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private pinger: ReturnType<typeof setInterval> | null = null;
  private nextRef = 0;
  private readonly pending = new Map<Ref, (frame: ServerFrame) => void>();
  private readonly url: string;
  private readonly WebSocketClass: WebSocketConstructor;
  private connectionId: string | undefined;
  private openWaiters: (() => void)[] = [];

  constructor(private readonly options: RealtimeOptions) {
    const url = options.url ?? (options.baseUrl ? `${options.baseUrl.replace(/\/+$/, "")}/ws` : undefined);
    if (!url) throw new TypeError("connectRealtime needs `baseUrl` or `url`");
    this.url = url.replace(/^http/, "ws");
    const ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!ctor) {
      throw new TypeError(
        "no WebSocket class: pass `WebSocket` (e.g. from the `ws` package, or run Node >= 22)",
      );
    }
    this.WebSocketClass = ctor;
  }

  /** The server's id of the current connection (after `welcome`). */
  get id(): string | undefined {
    return this.connectionId;
  }

  /** The last seq seen on `channel` (what a resume starts after). */
  lastSeq(channel: Channel): number | undefined {
    return this.channels.get(channel)?.last;
  }

  /** Open the connection (called by {@link connectRealtime}). */
  start(): this {
    this.stopped = false;
    void this.open("connect");
    return this;
  }

  /**
   * Receive `channel`'s messages; `after` resumes after that seq. Returns a function that
   * removes this handler (and unsubscribes when it was the last).
   */
  subscribe<C extends Channel>(
    channel: C,
    handler: (frame: MessageFrame<C>) => void,
    options: { after?: number } = {},
  ): () => void {
    let subscription = this.channels.get(channel);
    const fresh = subscription === undefined;
    if (subscription === undefined) {
      subscription = { handlers: new Set(), last: options.after };
      this.channels.set(channel, subscription);
    }
    subscription.handlers.add(handler as Handler);
    if (fresh && this.ready) this.sendSubscribe(channel, subscription);
    return () => {
      const current = this.channels.get(channel);
      if (!current) return;
      current.handlers.delete(handler as Handler);
      if (current.handlers.size === 0) {
        this.channels.delete(channel);
        if (this.ready) this.send({ type: "unsubscribe", channel });
      }
    };
  }

  /** Publish on a `tenant`, `room:` or `user:` channel; resolves with the stored message. */
  publish(channel: Channel, data: unknown): Promise<MessageFrame> {
    return this.request({ type: "publish", channel, data }) as Promise<MessageFrame>;
  }

  /** Set this socket's presence on a subscribed channel; resolves with the members. */
  presence(channel: Channel, state: PresenceState): Promise<PresenceFrame> {
    return this.request({ type: "presence", channel, state }) as Promise<PresenceFrame>;
  }

  /** Resolves once the connection is authenticated (at once when it is). */
  opened(): Promise<void> {
    if (this.ready) return Promise.resolve();
    return new Promise((resolve) => this.openWaiters.push(resolve));
  }

  /**
   * Drop the socket and connect again, as after a network change: every subscription
   * resumes after the last seq it saw, so nothing is missed or repeated.
   */
  reconnect(): void {
    this.socket?.close(4000, "client reconnect");
  }

  /** Close for good (no reconnection). */
  close(): void {
    this.stopped = true;
    this.clearTimers();
    this.socket?.close(1000, "client closed");
    this.socket = null;
    this.ready = false;
    this.rejectPending("the connection was closed");
    this.options.onState?.("closed");
  }

  private request(frame: ClientFrame & { ref?: Ref }): Promise<ServerFrame> {
    if (!this.ready) return Promise.reject(new Error("the realtime connection is not open"));
    const ref = `sdk-${++this.nextRef}`;
    return new Promise((resolve, reject) => {
      this.pending.set(ref, (answer) => {
        if (answer.type === "error") reject(Object.assign(new Error(answer.message), { frame: answer }));
        else resolve(answer);
      });
      this.send({ ...frame, ref });
    });
  }

  private async credential(reason: TokenReason): Promise<string | undefined> {
    const { token } = this.options;
    return typeof token === "function" ? token(reason) : token;
  }

  private async open(reason: TokenReason): Promise<void> {
    if (this.stopped) return;
    this.options.onState?.(this.attempts === 0 ? "connecting" : "reconnecting");
    let token: string | undefined;
    try {
      token = await this.credential(reason);
    } catch {
      token = undefined;
    }
    if (this.stopped) return;
    if (!token) {
      this.options.onState?.("closed", { code: 4401, reason: "no credential" });
      this.stopped = true;
      return;
    }
    const subprotocol = this.options.auth === "subprotocol";
    const socket = subprotocol
      ? new this.WebSocketClass(this.url, ["bearer", token])
      : new this.WebSocketClass(this.url);
    this.socket = socket;
    socket.onopen = () => {
      if (!subprotocol) socket.send(JSON.stringify({ type: "auth", token }));
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== "string") return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(event.data) as ServerFrame;
      } catch {
        return;
      }
      this.dispatch(frame);
    };
    socket.onerror = () => {
      // onclose follows and decides.
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.ready = false;
      this.clearTimers();
      this.rejectPending(`the connection closed (${event.code})`);
      this.closed(event.code, event.reason);
    };
  }

  private closed(code: number, reason: string): void {
    if (this.stopped) return;
    if (FINAL_CLOSES.has(code)) {
      this.stopped = true;
      this.options.onState?.("closed", { code, reason });
      return;
    }
    // A refused credential: ask for a fresh one once; twice in a row is final.
    let why: TokenReason = "connect";
    if (code === 4401) {
      if (this.unauthorized) {
        this.stopped = true;
        this.options.onState?.("closed", { code, reason });
        return;
      }
      this.unauthorized = true;
      why = "unauthorized";
    }
    this.attempts += 1;
    const max = this.options.maxAttempts;
    if (max !== undefined && this.attempts > max) {
      this.stopped = true;
      this.options.onState?.("closed", { code, reason });
      return;
    }
    this.options.onState?.("reconnecting", { code, reason });
    const initial = this.options.initialDelayMs ?? 500;
    const cap = this.options.maxDelayMs ?? 30_000;
    const ceiling = Math.min(cap, initial * 2 ** (this.attempts - 1));
    const delay = code === 4401 ? 0 : Math.random() * ceiling; // full jitter
    this.timer = setTimeout(() => void this.open(why), delay);
  }

  private dispatch(frame: ServerFrame): void {
    this.options.onFrame?.(frame);
    if ("ref" in frame && frame.ref !== undefined) {
      const waiter = this.pending.get(frame.ref);
      if (waiter) {
        this.pending.delete(frame.ref);
        waiter(frame);
      }
    }
    switch (frame.type) {
      case "welcome":
        this.connectionId = frame.connection_id;
        this.ready = true;
        this.attempts = 0;
        this.unauthorized = false;
        this.options.onState?.("open");
        for (const [channel, subscription] of this.channels) this.sendSubscribe(channel, subscription);
        this.startPinging();
        for (const resolve of this.openWaiters.splice(0)) resolve();
        return;
      case "message": {
        const subscription = this.channels.get(frame.channel);
        if (!subscription) return;
        if (subscription.last !== undefined && frame.seq <= subscription.last) return; // seen
        subscription.last = frame.seq;
        for (const handler of subscription.handlers) handler(frame);
        return;
      }
      case "subscribed": {
        const subscription = this.channels.get(frame.channel);
        // Without `after`, a subscription starts live after `seq`.
        if (subscription && subscription.last === undefined) subscription.last = frame.seq;
        return;
      }
      case "gap":
        this.options.onGap?.(frame);
        return;
      case "presence":
        this.options.onPresence?.(frame);
        return;
      case "token":
        this.options.onToken?.(frame);
        return;
      case "error":
        this.options.onError?.(frame);
        return;
      default:
        return;
    }
  }

  private sendSubscribe(channel: Channel, subscription: Subscription): void {
    const frame: ClientFrame = { type: "subscribe", channel };
    if (subscription.last !== undefined) frame.after = subscription.last;
    this.send(frame);
  }

  private send(frame: ClientFrame): void {
    const socket = this.socket;
    if (socket && socket.readyState === 1) socket.send(JSON.stringify(frame));
  }

  private startPinging(): void {
    const period = this.options.pingIntervalMs ?? 25_000;
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = setInterval(() => this.send({ type: "ping" }), period);
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.pinger) clearInterval(this.pinger);
    this.timer = null;
    this.pinger = null;
  }

  private rejectPending(message: string): void {
    const error: ErrorFrame = { type: "error", code: "closed", message };
    for (const waiter of this.pending.values()) waiter(error);
    this.pending.clear();
  }
}

/**
 * Open a realtime connection.
 *
 * ```ts
 * const live = connectRealtime({ baseUrl, token: () => api.credential() });
 * live.subscribe(`execution:${id}`, (m) => console.log(m.seq, m.data.type));
 * ```
 */
export function connectRealtime(options: RealtimeOptions): RealtimeClient {
  return new RealtimeClient(options).start();
}
