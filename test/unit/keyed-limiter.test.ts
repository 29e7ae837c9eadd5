// Fairness between tenants starts here: one key's burst waits behind itself, never in front of another key.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KeyedLimiter, retryWithBackoff } from "../../shared/runtime/concurrency.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import type { Logger } from "../../shared/runtime/logger.ts";

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

  it("submit answers at once: starts within the key's limit, queues past it, once per item", async () => {
    const limiter = new KeyedLimiter(1);
    const ran: string[] = [];
    const gate = deferred();
    const task = (name: string, wait?: Promise<void>) => async () => {
      ran.push(name);
      await wait;
    };
    assert.equal(limiter.submit("noisy", "Service/a", task("a", gate.promise)), "started");
    assert.equal(limiter.submit("noisy", "Service/b", task("b")), "queued");
    assert.equal(limiter.submit("noisy", "Service/b", task("b again")), "coalesced");
    assert.equal(limiter.submit("noisy", "Service/c", task("c")), "queued");
    assert.equal(limiter.queued, 2);
    assert.equal(limiter.submit("quiet", "Service/q", task("q")), "started", "another key is not queued");
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(ran, ["a", "q"]);
    gate.resolve();
    await limiter.close();
  });

  it("drains a key's queue in order, and an item may be queued again once it has started", async () => {
    const limiter = new KeyedLimiter(1);
    const ran: string[] = [];
    const gate = deferred();
    limiter.submit("ns", "a", async () => {
      ran.push("a");
      await gate.promise;
    });
    limiter.submit("ns", "b", async () => void ran.push("b"));
    limiter.submit("ns", "c", async () => void ran.push("c"));
    gate.resolve();
    while (ran.length < 3) await new Promise((r) => setImmediate(r));
    assert.deepEqual(ran, ["a", "b", "c"]);
    assert.equal(
      limiter.submit("ns", "b", async () => void ran.push("b")),
      "started",
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(ran, ["a", "b", "c", "b"]);
    assert.deepEqual(limiter.load("ns"), { inFlight: 0, waiting: 0 });
  });

  it("submitted work that fails is tried again when the policy says so, and gives up when it says no", async () => {
    const attempts: number[] = [];
    const limiter = new KeyedLimiter(2, {
      onBackgroundFailure: ({ attempt }) => {
        attempts.push(attempt);
        return attempt < 3 ? 0 : undefined;
      },
    });
    let calls = 0;
    limiter.submit("ns", "x", async () => {
      calls++;
      throw new Error("API server unavailable");
    });
    while (attempts.length < 3) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setTimeout(r, 5));
    assert.equal(calls, 3);
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.deepEqual(limiter.load("ns"), { inFlight: 0, waiting: 0 }, "a failure releases its slot");
  });

  it("retryWithBackoff doubles its delay, stops after its tries, and never retries a forbidden one", () => {
    const logged: unknown[] = [];
    const log = { warn: (_m: string, f?: unknown) => logged.push(f) } as unknown as Logger;
    const policy = retryWithBackoff(1000, 3, log);
    const fail = (attempt: number, error: unknown = new Error("timeout")) =>
      policy({ key: "ns", item: "Service/a", attempt, error });
    assert.deepEqual([fail(1), fail(2), fail(3)], [1000, 2000, undefined]);
    assert.equal(fail(1, forbidden("that Secret is the CA's")), undefined);
    assert.equal(logged.length, 4, "every failure is logged");
  });

  it("close() drops queued work but still serves callers waiting in run()", async () => {
    const limiter = new KeyedLimiter(1);
    const gate = deferred();
    let queuedRan = false;
    limiter.submit("ns", "a", () => gate.promise);
    limiter.submit("ns", "b", async () => void (queuedRan = true));
    const waiting = limiter.run("ns", async () => "served");
    const closed = limiter.close();
    gate.resolve();
    await closed;
    assert.equal(await waiting, "served");
    assert.equal(queuedRan, false);
    assert.equal(limiter.queued, 0);
  });

  it("close(grace) still works through what is queued, since its senders were answered already", async () => {
    const limiter = new KeyedLimiter(1);
    const ran: string[] = [];
    const gate = deferred();
    limiter.submit("ns", "a", async () => {
      await gate.promise;
      ran.push("a");
    });
    limiter.submit("ns", "b", async () => void ran.push("b"));
    const closed = limiter.close(5_000);
    gate.resolve();
    await closed;
    assert.deepEqual(ran, ["a", "b"]);
  });
});
