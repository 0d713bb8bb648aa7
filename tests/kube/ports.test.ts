import assert from "node:assert/strict";
import { freePorts, portSpan } from "./ports.ts";

Deno.test("port span: below the kernel's ephemeral range and below the NodePort range", () => {
  assert.deepEqual(portSpan(32_768), { low: 20_000, high: 29_999 });
  // A lowered ephemeral range moves the span down with it.
  assert.deepEqual(portSpan(15_000), { low: 5_000, high: 14_999 });
  assert.deepEqual(portSpan(5_000), { low: 1_024, high: 4_999 });
});

Deno.test("freePorts: distinct ports nobody listens on, never handed out twice by one process", () => {
  const { low, high } = portSpan();
  const first = freePorts(20);
  const second = freePorts(20);
  const all = [...first, ...second];
  assert.equal(new Set(all).size, 40);
  for (const p of all) {
    assert.ok(p >= low && p <= high, `port ${p} outside ${low}-${high}`);
    Deno.listen({ hostname: "127.0.0.1", port: p }).close();
  }
});

Deno.test("freePorts: a port that something listens on is not picked", () => {
  const { low, high } = portSpan();
  // Occupy a block of the span; none of it may come back.
  const held: Deno.Listener[] = [];
  for (let p = low; held.length < 200 && p <= high; p++) {
    try {
      held.push(Deno.listen({ hostname: "127.0.0.1", port: p }));
    } catch { /* already in use: equally unavailable */ }
  }
  try {
    const heldPorts = new Set(held.map((l) => (l.addr as Deno.NetAddr).port));
    for (let i = 0; i < 10; i++) {
      for (const p of freePorts(50)) assert.ok(!heldPorts.has(p), `port ${p} is held by a listener`);
    }
  } finally {
    for (const l of held) l.close();
  }
});
