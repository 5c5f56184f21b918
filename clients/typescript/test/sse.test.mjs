// The text/event-stream parser on bodies cut at awkward places (node --test, after `npm run build`).
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseEventStream } from "../dist/executions.js";

function body(...chunks) {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
      controller.close();
    },
  });
}

async function collect(stream) {
  const events = [];
  for await (const event of parseEventStream(stream)) events.push(event);
  return events;
}

test("events, comments and multi-line data", async () => {
  const events = await collect(
    body(": keep-alive\n\n", "id: 1\nevent: step.started\ndata: {\"seq\":1}\n\n", "event: token\ndata: a\ndata: b\n\n"),
  );
  assert.deepEqual(events, [
    { id: "1", event: "step.started", data: '{"seq":1}' },
    { id: undefined, event: "token", data: "a\nb" },
  ]);
});

test("a body cut inside lines, inside CRLF and inside a UTF-8 character", async () => {
  const bytes = new TextEncoder().encode("id: 7\r\nevent: x\r\ndata: é\r\n\r\n");
  const cut = bytes.indexOf(0xa9); // the second byte of "é"
  const crlf = bytes.indexOf(13);
  const events = await collect(
    body(bytes.slice(0, crlf + 1), bytes.slice(crlf + 1, cut), bytes.slice(cut)),
  );
  assert.deepEqual(events, [{ id: "7", event: "x", data: "é" }]);
});

test("an event without its blank line at the end is not dispatched", async () => {
  assert.deepEqual(await collect(body("id: 1\ndata: partial")), []);
});
