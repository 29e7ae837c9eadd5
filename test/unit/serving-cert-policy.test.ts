// The serving-cert rules no event can bend: which names a certificate carries, which annotation values are refused
// before any request, when a failure counts, when a Service given up on is looked at again, how scans coalesce,
// and how long a quoted value may be. Pure: a ManualClock, no cluster, no sleeping.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { annotations } from "../../shared/names.ts";
import { hostnamesFor, refusalBeforeRead } from "../../shared/serving-cert/reconcile.ts";
import { secretNameProblem } from "../../shared/serving-cert/dns-names.ts";
import {
  alreadyRecorded,
  causeOf,
  givenUp,
  nextRecheck,
  recheckDue,
  RECHECK_MAX_MS,
  RECHECK_MIN_MS,
} from "../../shared/serving-cert/failures.ts";
import { gateDecision, ScanGate } from "../../shared/serving-cert/scan-gate.ts";
import { ManualClock } from "../../shared/runtime/clock.ts";
import { capText, createLogger } from "../../shared/runtime/logger.ts";

const svc = (name: string, ns: string, a: Record<string, string>, clusterIP?: string): k8s.V1Service => ({
  metadata: { name, namespace: ns, annotations: a },
  spec: clusterIP ? { clusterIP } : {},
});

describe("short names, safely", () => {
  it("SERVING_CERT_SINGLE_LABEL_NAMES=false drops the bare <svc>, keeps <svc>.<ns>", () => {
    const alauda = svc("api", "shop", { [annotations.secretNameAlauda]: "t" });
    assert.deepEqual(hostnamesFor(alauda), ["api", "api.shop", "api.shop.svc", "api.shop.svc.cluster.local"]);
    assert.deepEqual(hostnamesFor(alauda, { singleLabelNames: false }), [
      "api.shop",
      "api.shop.svc",
      "api.shop.svc.cluster.local",
    ]);
  });

  it("never localhost nor kubernetes.default*, even as a short name", () => {
    const local = svc("localhost", "shop", { [annotations.secretNameAlauda]: "t" });
    assert.deepEqual(hostnamesFor(local), [
      "localhost.shop",
      "localhost.shop.svc",
      "localhost.shop.svc.cluster.local",
    ]);
    const api = svc("kubernetes", "default", { [annotations.secretNameAlauda]: "t" });
    assert.deepEqual(hostnamesFor(api), ["kubernetes"]);
    assert.equal(
      refusalBeforeRead(svc("kubernetes", "default", { [annotations.secretName]: "t" }))?.outcome,
      "name-too-long",
    );
  });
});

describe("bad annotation values get a clear answer", () => {
  it("an invalid Secret name is refused before any request, saying why", () => {
    for (const [name, why] of [
      ["a/b", /contains "\/"/],
      ["Web-TLS", /uppercase/],
      ["x".repeat(254), /254 characters long/],
      ["-web", /not well formed/],
      ["web..tls", /not well formed/],
      ["web tls", /contains " "/],
    ] as const) {
      assert.match(secretNameProblem(name)!, why, name);
      const refusal = refusalBeforeRead(svc("web", "shop", { [annotations.secretName]: name }))!;
      assert.equal(refusal.outcome, "invalid-secret-name");
      assert.equal(refusal.reason, "InvalidServingCertSecretName");
    }
    for (const name of ["web-tls", "web.tls", "a", "x".repeat(253)])
      assert.equal(secretNameProblem(name), undefined);
  });

  it("a 200 KB value is quoted capped, in the refusal too", () => {
    const huge = "A".repeat(200_000);
    const refusal = refusalBeforeRead(svc("web", "shop", { [annotations.secretName]: huge }))!;
    assert.ok(refusal.message.length < 600, String(refusal.message.length));
    assert.match(refusal.message, /200000 characters long/);
  });

  it("a CN over 64 characters is refused with the reason; short names keep a CN that fits", () => {
    const long = "s".repeat(40);
    const ns = "n".repeat(20); // long.ns.svc is 65 characters
    const refusal = refusalBeforeRead(svc(long, ns, { [annotations.secretName]: "t" }))!;
    assert.equal(refusal.outcome, "name-too-long");
    assert.match(refusal.message, /65 characters; X.509 allows at most 64/);
    assert.equal(refusalBeforeRead(svc(long, "n".repeat(19), { [annotations.secretName]: "t" })), undefined);
    // Headless: the CN is the wildcard, two characters longer.
    assert.equal(
      refusalBeforeRead(svc(long, "n".repeat(19), { [annotations.secretName]: "t" }, "None"))?.outcome,
      "name-too-long",
    );
    // With the bare short name the CN is <svc>, at most 63 characters.
    assert.equal(refusalBeforeRead(svc(long, ns, { [annotations.secretNameAlauda]: "t" })), undefined);
  });
});

describe("a failure counts once per cause", () => {
  it("the same cause seen again is already recorded; another one is not", () => {
    const cause = causeOf("foreign-secret", "uid-1");
    const marked = svc("web", "shop", {
      [annotations.error]: "m",
      [annotations.errorNum]: "1",
      [annotations.failureCause]: cause,
    });
    assert.equal(alreadyRecorded(marked, cause, "other message"), true);
    assert.equal(alreadyRecorded(marked, causeOf("foreign-secret", "uid-2"), "m"), false);
    // Marked before causes were recorded: the message stands for the cause.
    const legacy = svc("web", "shop", { [annotations.error]: "m", [annotations.errorNum]: "3" });
    assert.equal(alreadyRecorded(legacy, cause, "m"), true);
    assert.equal(alreadyRecorded(legacy, cause, "n"), false);
  });

  it("a Service is given up on at its tenth failure; a missing or unreadable count is no failure", () => {
    const failed = (n: string) => svc("web", "shop", { [annotations.errorNum]: n });
    assert.equal(givenUp(failed("9")), false);
    assert.equal(givenUp(failed("10")), true);
    assert.equal(givenUp(failed("11")), true);
    assert.equal(givenUp(failed("-3")), false);
    assert.equal(givenUp(failed("ten")), false);
    assert.equal(givenUp(svc("web", "shop", {})), false);
    assert.equal(givenUp({}), false);
  });

  it("a Service given up on is re-checked with backoff: 1 h, doubling, at most 24 h", () => {
    const clock = new ManualClock(new Date("2027-01-01T00:00:00Z"));
    let s = svc("web", "shop", { [annotations.errorNum]: "10" });
    assert.equal(recheckDue(s, clock.now()), true, "no schedule yet: due");
    const intervals: number[] = [];
    for (let i = 0; i < 7; i++) {
      const next = nextRecheck(s, clock.now());
      intervals.push(Number(next[annotations.recheckIntervalSeconds]) * 1000);
      s = svc("web", "shop", { ...s.metadata!.annotations, ...next });
      assert.equal(recheckDue(s, clock.now()), false);
      clock.advance(intervals.at(-1)! - 1);
      assert.equal(recheckDue(s, clock.now()), false);
      clock.advance(1);
      assert.equal(recheckDue(s, clock.now()), true);
    }
    assert.deepEqual(
      intervals.map((ms) => ms / RECHECK_MIN_MS),
      [1, 2, 4, 8, 16, 24, 24],
    );
    assert.equal(intervals.at(-1), RECHECK_MAX_MS);
  });
});

/** A promise and its resolver, so a test decides when a "scan" ends. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe("scans coalesce and are rate-limited", () => {
  it("decides from the state alone", () => {
    assert.equal(gateDecision({}, "ping:a", 0, 60_000), "start");
    assert.equal(gateDecision({ running: { key: "ping:a" } }, "ping:a", 0, 60_000), "join");
    assert.equal(gateDecision({ running: { key: "ping:a" } }, "apiserver:b", 0, 60_000), "wait");
    const last = { key: "ping:a", startedAt: 1_000 };
    assert.equal(gateDecision({ last }, "ping:a", 60_999, 60_000), "reuse");
    assert.equal(gateDecision({ last }, "ping:a", 61_000, 60_000), "start");
    assert.equal(gateDecision({ last }, "ping:b", 2_000, 60_000), "start", "another CA: a scan of its own");
    assert.equal(gateDecision({ last }, "ping:a", 2_000, 0), "start", "no rate limit");
  });

  it("twenty concurrent pings cost one scan; pings within the interval get its result; then a new scan", async () => {
    const clock = new ManualClock(new Date("2027-01-01T00:00:00Z"));
    const gate = new ScanGate<{ n: number }>(clock, 60_000);
    let scans = 0;
    const end = deferred<void>();
    const scan = async () => {
      const n = ++scans;
      await end.promise;
      return { n };
    };
    const answers = Array.from({ length: 20 }, () => gate.run("ping:a", scan));
    end.resolve();
    const results = await Promise.all(answers);
    assert.equal(scans, 1);
    assert.deepEqual(
      results.map((r) => r.coalesced),
      [false, ...Array(19).fill("joined")],
    );
    clock.advance(59_999);
    assert.deepEqual(await gate.run("ping:a", scan), { result: { n: 1 }, coalesced: "rate-limited" });
    assert.equal(scans, 1);
    clock.advance(1);
    assert.deepEqual(await gate.run("ping:a", scan), { result: { n: 2 }, coalesced: false });
  });

  it("a request for another CA waits for the running scan, then scans; a failed scan's error is the answer", async () => {
    const clock = new ManualClock(new Date("2027-01-01T00:00:00Z"));
    const gate = new ScanGate<string>(clock, 60_000);
    const order: string[] = [];
    const first = deferred<void>();
    const a = gate.run("ping:old", async () => {
      order.push("old starts");
      await first.promise;
      order.push("old ends");
      return "old";
    });
    const b = gate.run("apiserver:new", async () => {
      order.push("new starts");
      return "new";
    });
    await Promise.resolve();
    first.resolve();
    assert.deepEqual([(await a).result, (await b).result], ["old", "new"]);
    assert.deepEqual(order, ["old starts", "old ends", "new starts"]);

    await assert.rejects(
      gate.run("ping:x", () => Promise.reject(new Error("API server down"))),
      /down/,
    );
    await assert.rejects(
      gate.run("ping:x", async () => "never run"),
      /down/,
    );
  });
});

describe("log lines cap what they quote", () => {
  it("a 200 KB value is cut to 256 characters and says how much is left out", () => {
    const lines: string[] = [];
    const log = createLogger("info", {}, (l) => lines.push(l));
    const huge = "x".repeat(200_000);
    log.info(huge, { secret: huge, nested: { list: [huge] }, error: new Error(huge), n: 3 });
    assert.ok(lines[0]!.length < 2_000, String(lines[0]!.length));
    const line = JSON.parse(lines[0]!) as {
      secret: string;
      nested: { list: string[] };
      error: { message: string };
      n: number;
    };
    assert.equal(line.secret, "x".repeat(256) + "…(+199744 bytes)");
    assert.equal(line.nested.list[0], line.secret);
    assert.equal(line.error.message, line.secret);
    assert.equal(line.n, 3);
    assert.equal(capText("short"), "short");
    assert.equal(capText("é".repeat(300)), "é".repeat(256) + "…(+88 bytes)");
  });
});
