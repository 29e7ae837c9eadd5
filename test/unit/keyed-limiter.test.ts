// Fairness between tenants starts here: one key's burst waits behind itself, never in front of another key.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KeyedLimiter } from "../../shared/runtime/concurrency.ts";

const deferred = () => {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
};

describe("KeyedLimiter", () => {
  it("runs at most `limit` tasks per key, in arrival order, while another key runs at once", async () => {
    const limiter = new KeyedLimiter(2);
    const started: string[] = [];
    const gates = Array.from({ length: 5 }, deferred);
    const noisy = gates.map((g, i) =>
      limiter.run("noisy", async () => {
        started.push(`noisy-${i}`);
        await g.promise;
      }),
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(started, ["noisy-0", "noisy-1"]);
    assert.deepEqual(limiter.load("noisy"), { inFlight: 2, waiting: 3 });

    await limiter.run("quiet", async () => void started.push("quiet"));
    assert.deepEqual(
      started,
      ["noisy-0", "noisy-1", "quiet"],
      "the quiet key did not wait for the noisy one",
    );

    gates[1]!.resolve();
    await new Promise((r) => setImmediate(r));
    assert.equal(started.at(-1), "noisy-2", "a freed slot goes to the oldest waiter of the same key");
    for (const g of gates) g.resolve();
    await Promise.all(noisy);
    assert.deepEqual(limiter.load("noisy"), { inFlight: 0, waiting: 0 });
  });

  it("releases its slot when a task fails, and 0 means no limit", async () => {
    const limiter = new KeyedLimiter(1);
    await assert.rejects(
      limiter.run("a", () => Promise.reject(new Error("boom"))),
      /boom/,
    );
    assert.equal(await limiter.run("a", async () => 7), 7);
    const unbounded = new KeyedLimiter(0);
    const gate = deferred();
    const running = [1, 2, 3].map(() => unbounded.run("a", () => gate.promise));
    assert.deepEqual(unbounded.load("a"), { inFlight: 0, waiting: 0 });
    gate.resolve();
    await Promise.all(running);
  });
});
