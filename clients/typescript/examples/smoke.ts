/**
 * A strict program using the SDK against a running platform, end to end:
 *
 *   ORCHESTRION_URL=http://127.0.0.1:8000 ORCHESTRION_EMAIL=... ORCHESTRION_PASSWORD=... \
 *     node --experimental-websocket examples/dist/smoke.js      # Node 22+: no flag needed
 *
 * It logs in, proves a refresh on 401, creates a workflow, runs it while watching it over
 * the realtime socket and the SSE stream, reads the execution back, gets a typed problem
 * for a 404 (returned, then thrown by `unwrap`), and logs out. It prints one JSON line.
 */

import {
  connectRealtime,
  createClient,
  openRealtime,
  ProblemError,
  streamExecution,
  unwrap,
  type Channel,
  type paths,
  type ExecutionEvent,
  type Problem,
} from "@orchestrion/sdk";

// The body POST /api/v1/workflows takes (by path, so a renamed schema does not matter).
type WorkflowDefinition = Extract<
  paths["/api/v1/workflows"]["post"]["requestBody"],
  { content: unknown }
>["content"]["application/json"];

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`set ${name}`);
  return value;
}

function check(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(`check failed: ${message}`);
}

const TERMINAL = new Set(["execution.succeeded", "execution.failed", "execution.cancelled"]);

async function main(): Promise<Record<string, unknown>> {
  const baseUrl = need("ORCHESTRION_URL");
  const api = createClient({ baseUrl });

  // Log in, then spoil the access token: the next call refreshes once and succeeds.
  const pair = await api.login(need("ORCHESTRION_EMAIL"), need("ORCHESTRION_PASSWORD"));
  check((pair.token_type ?? "Bearer").toLowerCase() === "bearer" && pair.refresh_token.length > 0, "a bearer token pair");
  api.setTokens({ ...pair, access_token: "not-a-valid-token" });
  const me = await unwrap(api.GET("/api/v1/auth/me"));
  const refreshed = api.tokens()?.access_token !== "not-a-valid-token";
  check(refreshed && me.email === need("ORCHESTRION_EMAIL"), "refresh on 401, then /me answers");

  const definition: WorkflowDefinition = {
    name: `sdk-smoke-${Date.now()}`,
    description: "created by the TypeScript SDK's smoke program",
    tags: ["sdk"],
    status: "active",
    inputs: { type: "object", properties: { x: { type: "integer" } }, required: ["x"] },
    steps: [
      { id: "double", type: "transform", with: { value: "{{ inputs.x * 2 }}" } },
      { id: "add", type: "transform", needs: ["double"], with: { value: "{{ steps.double.output.value + 1 }}" } },
    ],
    outputs: { result: "{{ steps.add.output.value }}" },
  };
  const created = await api.POST("/api/v1/workflows", { body: definition });
  if (created.error) throw new ProblemError(created.error as Problem);
  const workflow = created.data;
  check(workflow.version === 1 && workflow.name === definition.name, "the workflow was created");

  const started = await unwrap(
    api.POST("/api/v1/workflows/{workflow_id}/executions", {
      params: { path: { workflow_id: workflow.id } },
      body: { inputs: { x: 20 } },
    }),
  );

  // Realtime: the execution channel replays its log from seq 0, then goes live.
  const live = openRealtime(api);
  const realtimeSeqs: number[] = [];
  const realtimeDone = new Promise<string>((resolve) => {
    live.subscribe(
      `execution:${started.id}`,
      (message) => {
        const event: ExecutionEvent = message.data;
        realtimeSeqs.push(message.seq);
        if (TERMINAL.has(event.type)) resolve(event.type);
      },
      { after: 0 },
    );
  });

  // SSE: the same log over HTTP, to the terminal event.
  const sseTypes: string[] = [];
  for await (const item of streamExecution(api, started.id)) {
    if (item.kind === "event") sseTypes.push(item.event.type);
  }
  // Resuming the stream after seq 3 (sent as Last-Event-ID) gives the rest, and only it.
  const resumedSeqs: number[] = [];
  for await (const item of streamExecution(api, started.id, { after: 3 })) {
    if (item.kind === "event") resumedSeqs.push(item.event.seq);
  }
  const realtimeTerminal = await realtimeDone;
  live.close();

  // Resume after a reconnection: messages published while this socket was away arrive
  // after it is back, in order, each once. The token function holds the reconnection
  // until the other socket has published.
  let hold: Promise<void> = Promise.resolve();
  let release = (): void => {};
  const states: string[] = [];
  const resumed = connectRealtime({
    baseUrl,
    token: async () => {
      await hold;
      return api.credential();
    },
    onState: (state) => states.push(state),
  });
  const other = openRealtime(api);
  await Promise.all([resumed.opened(), other.opened()]);
  const room: Channel = `room:sdk-${Date.now()}`;
  const roomSeqs: number[] = [];
  let thirdArrived = (): void => {};
  const third = new Promise<void>((resolve) => (thirdArrived = resolve));
  resumed.subscribe(room, (message) => {
    roomSeqs.push(message.seq);
    if (message.seq === 3) thirdArrived();
  });
  const first = await resumed.publish(room, { text: "one" });
  hold = new Promise<void>((resolve) => (release = resolve));
  resumed.reconnect();
  await other.publish(room, { text: "two" });
  await other.publish(room, { text: "three" });
  release();
  await third;
  resumed.close();
  other.close();
  check(first.seq === 1, "the first message is seq 1");
  check(states.includes("reconnecting"), "the socket reconnected");

  const execution = await unwrap(
    api.GET("/api/v1/executions/{execution_id}", { params: { path: { execution_id: started.id } } }),
  );
  check(execution.status === "succeeded", `the execution succeeded (${execution.status})`);

  // A 404 comes back as a typed problem...
  const missing = await api.GET("/api/v1/workflows/{workflow_id}", {
    params: { path: { workflow_id: "0190a000-0000-7000-8000-000000000000" } },
  });
  const problem: Problem | undefined = missing.error;
  check(problem !== undefined && problem.status === 404, "a 404 problem");
  // ...or is thrown by unwrap.
  let thrown: ProblemError | undefined;
  try {
    await unwrap(api.GET("/api/v1/executions/{execution_id}", { params: { path: { execution_id: "missing" } } }));
  } catch (error) {
    if (error instanceof ProblemError) thrown = error;
  }
  check(thrown?.status === 404, "unwrap throws a ProblemError");

  await api.logout();
  check(api.tokens() === null, "logout forgets the tokens");

  return {
    ok: true,
    refreshed,
    workflow_id: workflow.id,
    execution_id: execution.id,
    status: execution.status,
    outputs: execution.outputs,
    sse_types: sseTypes,
    sse_resumed_seqs: resumedSeqs,
    realtime_seqs: realtimeSeqs,
    realtime_terminal: realtimeTerminal,
    room_seqs: roomSeqs,
    problem: { status: problem.status, title: problem.title, type: problem.type, detail: problem.detail },
    thrown: { status: thrown.status, detail: thrown.detail },
  };
}

main().then(
  (summary) => {
    console.log(JSON.stringify(summary));
  },
  (error: unknown) => {
    const detail = error instanceof ProblemError ? error.problem : String(error);
    console.log(JSON.stringify({ ok: false, error: detail }));
    process.exitCode = 1;
  },
);
