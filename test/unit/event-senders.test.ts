// Who may send a function events: Knative's OIDC identity names, the configuration, and the check's costs.
import { describe, it } from "node:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadAll } from "js-yaml";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import * as z from "zod";
import {
  createSenderCheck,
  knativeOidcServiceAccount,
  senderConfigShape,
  type TokenVerifier,
} from "../../shared/runtime/event-senders.ts";
import { ManualClock } from "../../shared/runtime/clock.ts";
import { parseConfig } from "../../shared/runtime/config.ts";
import { defineFunction } from "../../shared/runtime/define.ts";
import { createFunctionHost } from "../../shared/runtime/server.ts";
import { createLogger } from "../../shared/runtime/logger.ts";
import { createRuntimeMetrics } from "../../shared/runtime/metrics.ts";
import { functionNames, functionsDir } from "../../shared/host/functions.ts";
import type { AnyFunctionDefinition } from "../../shared/runtime/define.ts";

const SOURCE = "system:serviceaccount:service-ca:services-oidc-sources.knative.dev-apiserversource";

/** Fake tokens name their user and audience; "bad" fails the signature. */
const tok = (username: string, audience: string) =>
  `${Buffer.from(username).toString("base64url")}.${Buffer.from(audience).toString("base64url")}`;
const untok = (token: string) => token.split(".").map((p) => Buffer.from(p, "base64url").toString("utf8"));

/** A verifier over fake tokens that counts what each check would cost. */
function fakeVerifier(opts: { reviewMs?: number; revoked?: Set<string> } = {}) {
  const cost = { inspections: 0, reviews: 0 };
  const verifier: TokenVerifier = {
    async inspect(token, audience) {
      cost.inspections++;
      const [username, aud] = untok(token);
      if (token === "bad" || !username) return { ok: false, reason: "signature" };
      if (aud !== audience) return { ok: false, reason: "audience" };
      return { ok: true, value: { username, expiresAt: 2_000_000_000 } };
    },
    async review(token) {
      cost.reviews++;
      await new Promise((r) => setTimeout(r, opts.reviewMs ?? 0));
      if (opts.revoked?.has(token)) return { ok: false, reason: "revoked" };
      return { ok: true, value: { username: untok(token)[0]! } };
    },
  };
  return { verifier, cost };
}

describe("event senders", () => {
  it("names each source's OIDC ServiceAccount as Knative Eventing v0.48 does (kmeta.ChildName)", () => {
    assert.equal(
      knativeOidcServiceAccount({ kind: "ApiServerSource", name: "services" }),
      "services-oidc-sources.knative.dev-apiserversource",
    );
    assert.equal(
      knativeOidcServiceAccount({ kind: "PingSource", name: "rotate-ca-daily" }),
      "rotate-ca-daily-oidc-sources.knative.dev-pingsource",
    );
    // Longer than 63 with the suffix: the name, the md5 of name + suffix (as written, before lower-casing), and as
    // much of the suffix as fits; the deployed end-to-end test checks these against the ServiceAccounts Knative made.
    const long = knativeOidcServiceAccount({ kind: "ApiServerSource", name: "ca-bundle-to-inject-webhooks" });
    assert.match(long, /^ca-bundle-to-inject-webhooks[0-9a-f]{32}-oi$/);
    assert.ok(long.length <= 63);
    assert.equal(
      knativeOidcServiceAccount({ kind: "PingSource", name: "inject-apiservice-hourly" }),
      "inject-apiservice-hourly-oidc-sources.knative.dev-pingsource",
    );
  });

  it("defaults to the declared sources' identities and validates what is configured", () => {
    const shape = senderConfigShape("rotate-ca", [{ kind: "PingSource", name: "rotate-ca-daily" }]);
    const defaults = parseConfig(shape, {});
    assert.equal(defaults.EVENT_AUDIENCE, "service-ca-functions.dev/rotate-ca");
    assert.deepEqual(defaults.EVENT_SENDERS, [
      "system:serviceaccount:service-ca:rotate-ca-daily-oidc-sources.knative.dev-pingsource",
    ]);
    const set = parseConfig(shape, { EVENT_SENDERS: "ops/pinger, system:serviceaccount:ops:other" });
    assert.deepEqual(set.EVENT_SENDERS, [
      "system:serviceaccount:ops:pinger",
      "system:serviceaccount:ops:other",
    ]);
    for (const bad of ["pinger", "ops/Pinger", "a/b/c", " , ", "system:serviceaccount:ops"])
      assert.throws(() => parseConfig(shape, { EVENT_SENDERS: bad }), /EVENT_SENDERS/, bad);
    assert.throws(() => parseConfig(senderConfigShape("x", []), {}), /at least one sender/);
  });

  it("refuses without a token, with a bad one and with someone else's, at no review", async () => {
    const { verifier, cost } = fakeVerifier();
    const check = createSenderCheck(
      { audience: "aud", senders: [SOURCE] },
      verifier,
      new ManualClock(new Date()),
    );
    assert.equal(((await check(undefined)) as { status: number }).status, 401);
    assert.equal(((await check("Basic abc")) as { status: number }).status, 401);
    assert.equal(((await check("Bearer bad")) as { status: number }).status, 401);
    assert.equal(((await check(`Bearer ${tok(SOURCE, "other-aud")}`)) as { status: number }).status, 401);
    const tenant = await check(`Bearer ${tok("system:serviceaccount:tenant:admin", "aud")}`);
    assert.deepEqual(tenant, {
      status: 403,
      reason: "not a source of this function",
      username: "system:serviceaccount:tenant:admin",
    });
    assert.equal(cost.reviews, 0);
  });

  it("reviews a source's token once per burst and once per two minutes", async () => {
    const { verifier, cost } = fakeVerifier({ reviewMs: 20 });
    const clock = new ManualClock(new Date());
    const check = createSenderCheck({ audience: "aud", senders: [SOURCE] }, verifier, clock);
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => check(`Bearer ${tok(SOURCE, "aud")}`)),
    );
    assert.ok(answers.every((a) => "username" in a && a.username === SOURCE));
    assert.equal(cost.reviews, 1);
    clock.advance(119_000);
    await check(`Bearer ${tok(SOURCE, "aud")}`);
    assert.equal(cost.reviews, 1);
    clock.advance(2_000);
    await check(`Bearer ${tok(SOURCE, "aud")}`);
    assert.equal(cost.reviews, 2);
  });

  it("refuses a source's token the API server no longer accepts, and remembers that too", async () => {
    const revoked = tok(SOURCE, "aud");
    const { verifier, cost } = fakeVerifier({ revoked: new Set([revoked]) });
    const check = createSenderCheck(
      { audience: "aud", senders: [SOURCE] },
      verifier,
      new ManualClock(new Date()),
    );
    for (let i = 0; i < 5; i++)
      assert.equal(((await check(`Bearer ${revoked}`)) as { status: number }).status, 401);
    assert.equal(cost.reviews, 1);
  });

  it("answers refused senders generically, before reading the body, and never calls the handler", async () => {
    let handled = 0;
    const lines: string[] = [];
    const def = defineFunction({
      name: "probe",
      description: "counts",
      config: {},
      event: z.unknown(),
      init: () => ({}),
      handle: async () => {
        handled++;
        return {};
      },
    });
    const { verifier } = fakeVerifier();
    const log = createLogger("debug", {}, (line) => lines.push(line));
    const host = createFunctionHost(
      def,
      {},
      {
        log,
        clock: new ManualClock(new Date()),
        bodyLimitBytes: 1024,
        requestTimeoutMs: 1000,
        metrics: createRuntimeMetrics("probe", false),
        checkSender: createSenderCheck(
          { audience: "aud", senders: [SOURCE] },
          verifier,
          new ManualClock(new Date()),
        ),
      },
    );
    host.setReady(true);
    const server = host.app.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const secret = "body-that-must-not-be-logged";
      const send = (authorization?: string) =>
        fetch(url, {
          method: "POST",
          headers: {
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "s",
            "ce-type": "dev.knative.sources.ping",
            "content-type": "application/json",
            ...(authorization ? { authorization } : {}),
          },
          body: JSON.stringify({ secret }),
        });
      for (const [auth, status, body] of [
        [undefined, 401, { error: { kind: "unauthenticated", message: "unauthenticated" } }],
        ["Bearer bad", 401, { error: { kind: "unauthenticated", message: "unauthenticated" } }],
        [
          `Bearer ${tok("system:serviceaccount:tenant:admin", "aud")}`,
          403,
          { error: { kind: "forbidden", message: "forbidden" } },
        ],
      ] as const) {
        const res = await send(auth);
        assert.equal(res.status, status);
        assert.deepEqual(await res.json(), body);
      }
      assert.equal(handled, 0);
      assert.equal((await send(`Bearer ${tok(SOURCE, "aud")}`)).status, 200);
      assert.equal(handled, 1);
      const refusals = lines.filter((l) => l.includes("event sender refused"));
      assert.equal(refusals.length, 3);
      assert.ok(
        refusals.some((l) => l.includes("not a source of this function") && l.includes("tenant:admin")),
      );
      assert.ok(!lines.some((l) => l.includes(secret)), "no body is logged");
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it("infra/ gives each function its declared sources' identities, and each source the function's audience", async () => {
    const infra = join(import.meta.dirname, "../../infra/base");
    type Doc = {
      kind: string;
      metadata: { name: string };
      spec: {
        sink?: { ref: { name: string }; audience?: string };
        template?: { spec: { containers: Array<{ env?: Array<{ name: string; value?: string }> }> } };
      };
    };
    const docs = (file: string) => loadAll(readFileSync(join(infra, file), "utf8")) as Doc[];
    const sources = [...docs("sources/apiserversources.yaml"), ...docs("sources/pingsources.yaml")].filter(
      (d) => d?.kind === "ApiServerSource" || d?.kind === "PingSource",
    );
    for (const name of functionNames()) {
      const def = ((await import(join(functionsDir, name, "index.ts"))) as { default: AnyFunctionDefinition })
        .default;
      const ksvc = docs(`functions/${name}.yaml`).find((d) => d?.kind === "Service")!;
      const env = Object.fromEntries(
        (ksvc.spec.template!.spec.containers[0]!.env ?? []).map((e) => [e.name, e.value ?? ""]),
      );
      const expected = parseConfig(senderConfigShape(name, def.sources ?? []), {});
      const configured = parseConfig(senderConfigShape(name, def.sources ?? []), env);
      assert.deepEqual(
        configured,
        expected,
        `${name}: EVENT_* in infra/ are its declared sources' identities`,
      );
      const delivering = sources.filter((s) => s.spec.sink!.ref.name === name);
      assert.deepEqual(
        delivering.map((s) => `${s.kind}/${s.metadata.name}`).sort(),
        (def.sources ?? []).map((s) => `${s.kind}/${s.name}`).sort(),
        `${name}: the sources it declares are the ones infra/ points at it`,
      );
      for (const s of delivering)
        assert.equal(s.spec.sink!.audience, expected.EVENT_AUDIENCE, s.metadata.name);
    }
  });
});
