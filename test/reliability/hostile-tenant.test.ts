// A hostile tenant against the running system (Knative's own adapters sending OIDC tokens, every function under its
// own ServiceAccount): a ServiceAccount with the `admin` ClusterRole in its own namespace only, at a network position
// that reaches every function. Forged events (no token, its own token, its own token for the function's audience,
// another function's source token) are refused 401/403 with a generic body, cost no API request at all (a proxy in
// front of the API server counts every request the functions make; the audit log shows their writes and reviews),
// and change no Service; the legitimate flows still work.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { createTenant } from "../../dev/tenants.ts";
import { startLocalSystem, SYSTEM_NAMESPACE, type LocalSystem } from "../../dev/local-system/local-system.ts";
import { apiServerEvent, deliver, pingEvent, sourceToken } from "../../dev/events.ts";
import { waitFor } from "../../dev/processes.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { auditMark, auditSince, reviewsBy, serviceAccountUser, writesBy } from "../../dev/audit.ts";
import { annotations } from "../../shared/names.ts";
import { defaultAudience, knativeOidcServiceAccount } from "../../shared/runtime/event-senders.ts";

const TENANT = "tenant";
const TENANT_SA = "tenant-admin";

let system: LocalSystem;
let proxy: FaultProxy;
let proxyStarting: Promise<FaultProxy> | undefined;
let core: k8s.CoreV1Api;
const figures: string[] = [];

before(async () => {
  system = await startLocalSystem({
    log: (l) => console.log(`[local-system] ${l}`),
    // Every function talks to the API server through one counting proxy.
    functionKubeconfig: async (_fn, own) => {
      proxy = await (proxyStarting ??= startFaultProxy({ server: serverOf(own), caFile: caOf(own) }));
      return proxy.kubeconfigVia(own);
    },
  });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
  await createTenant(system.kc, TENANT, TENANT_SA);
});
after(async () => {
  await system?.stop();
  await proxy?.close();
  if (figures.length) console.log(figures.map((f) => `reliability: hostile-tenant ${f}`).join("\n"));
});

const kubeconfigOf = (path: string) => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
};
const serverOf = (path: string) => kubeconfigOf(path).getCurrentCluster()!.server;
const caOf = (path: string) => kubeconfigOf(path).getCurrentCluster()!.caFile!;

/** A token of the tenant's own ServiceAccount, for any audience: what a projected token volume in its pod gives. */
async function tenantToken(audience?: string): Promise<string> {
  const t = await core.createNamespacedServiceAccountToken({
    namespace: TENANT,
    name: TENANT_SA,
    body: { spec: { audiences: audience ? [audience] : [], expirationSeconds: 3600 } },
  });
  return t.status!.token;
}

/** The tenant's own client, to show what it may and may not do at the API server. */
async function tenantClient(): Promise<k8s.KubeConfig> {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: system.plane.server, caFile: system.plane.caFile }],
    users: [{ name: "u", token: await tenantToken() }],
    contexts: [{ name: "c", cluster: "c", user: "u" }],
    currentContext: "c",
  });
  return kc;
}

const services = async () =>
  Object.fromEntries(
    (await core.listServiceForAllNamespaces()).items.map((s) => [
      `${s.metadata!.namespace}/${s.metadata!.name}`,
      s.metadata!.annotations ?? {},
    ]),
  );

/** Until the functions' API traffic (events from setting things up) has been quiet for two seconds. */
async function quiet(): Promise<number> {
  let last = -1;
  let since = performance.now();
  return waitFor(
    "the functions' API traffic to settle",
    async () => {
      if (proxy.counts.requests !== last) {
        last = proxy.counts.requests;
        since = performance.now();
        return undefined;
      }
      return performance.now() - since > 2000 ? last : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

describe("a hostile tenant (namespace admin, reaching every function)", () => {
  it("a legitimate flow first: an annotated Service gets its Secret through Knative's adapter and its OIDC token", async () => {
    await core.createNamespacedService({
      namespace: TENANT,
      body: {
        metadata: { name: "web", annotations: { [annotations.secretName]: "web-tls" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    // A failure count to protect: a Service whose Secret name is taken by a Secret the system does not own.
    await core.createNamespacedSecret({ namespace: TENANT, body: { metadata: { name: "taken" } } });
    await core.createNamespacedService({
      namespace: TENANT,
      body: {
        metadata: { name: "clash", annotations: { [annotations.secretName]: "taken" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    await waitFor(
      "Secret tenant/web-tls",
      () => core.readNamespacedSecret({ namespace: TENANT, name: "web-tls" }).catch(() => undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const log = await readFile(join(system.plane.dir, "logs", "issue-serving-cert.log"), "utf8");
    assert.doesNotMatch(log, /event sender refused/, "Knative's adapters were never refused");
  });

  it("cannot mint a token for any source's OIDC identity", async () => {
    const core = (await tenantClient()).makeApiClient(k8s.CoreV1Api);
    await assert.rejects(
      core.createNamespacedServiceAccountToken({
        namespace: SYSTEM_NAMESPACE,
        name: knativeOidcServiceAccount({ kind: "PingSource", name: "expiry-scan-hourly" }),
        body: { spec: { audiences: [defaultAudience("expiry-scan")] } },
      }),
      (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
    );
  });

  it("forged events to every function: 401/403, generic bodies, no API request, no Service changed", async () => {
    const names = [...system.functions.keys()];
    const own = await tenantToken();
    const forAudience = new Map<string, string>();
    for (const fn of names) forAudience.set(fn, await tenantToken(defaultAudience(fn)));
    // Another function's source token, as if replayed: for that function's audience, and one minted for this
    // function's audience (the tenant could not get either; the test, as admin, makes them to show they fail).
    const otherSource = new Map<string, { replayed: string; retargeted: string }>();
    for (const [i, fn] of names.entries()) {
      const other = names[(i + 1) % names.length]!;
      const replayed = await sourceToken(system.kc, other);
      const claims = JSON.parse(Buffer.from(replayed.split(".")[1]!, "base64url").toString("utf8")) as {
        sub: string;
      };
      const [, , ns, sa] = claims.sub.split(":");
      const retargeted = (
        await core.createNamespacedServiceAccountToken({
          namespace: ns!,
          name: sa!,
          body: { spec: { audiences: [defaultAudience(fn)], expirationSeconds: 600 } },
        })
      ).status!.token;
      otherSource.set(fn, { replayed, retargeted });
    }
    const before = await services();
    const requestsBefore = await quiet();
    const mark = await auditMark(system.plane);

    const forged = (fn: string) => [
      { label: "no token", token: undefined, status: 401 },
      { label: "its own token", token: own, status: 401 },
      { label: "its own token for the function's audience", token: forAudience.get(fn)!, status: 403 },
      {
        label: "its own token for another function's audience",
        token: forAudience.get(names.find((n) => n !== fn)!)!,
        status: 401,
      },
      {
        label: "another function's source token, replayed",
        token: otherSource.get(fn)!.replayed,
        status: 401,
      },
      {
        label: "another function's source, for this audience",
        token: otherSource.get(fn)!.retargeted,
        status: 403,
      },
      { label: "a forged JWT", token: forgedJwt(forAudience.get(fn)!), status: 401 },
    ];
    const events = (fn: string) => [
      pingEvent(SYSTEM_NAMESPACE, `${fn}-hourly`, { reason: "forged" }),
      apiServerEvent(
        { apiVersion: "v1", kind: "Service", metadata: { namespace: "kube-system", name: "kube-dns" } },
        "add",
      ),
      apiServerEvent(
        { apiVersion: "v1", kind: "Service", metadata: { namespace: TENANT, name: "clash" } },
        "update",
      ),
    ];
    let sent = 0;
    const bodies = new Set<string>();
    const started = performance.now();
    await Promise.all(
      names.map(async (fn) => {
        for (const attempt of forged(fn)) {
          // Ten of each at once: a burst, as the ten forged pings in fifteen seconds.
          const answers = await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              deliver(system.functions.get(fn)!.url, events(fn)[i % 3]!, attempt.token),
            ),
          );
          for (const a of answers) {
            sent++;
            assert.equal(a.status, attempt.status, `${fn}, ${attempt.label}: ${JSON.stringify(a.json)}`);
            bodies.add(JSON.stringify(a.json));
          }
        }
      }),
    );
    const ms = performance.now() - started;
    assert.deepEqual(
      [...bodies].sort(),
      [
        JSON.stringify({ error: { kind: "forbidden", message: "forbidden" } }),
        JSON.stringify({ error: { kind: "unauthenticated", message: "unauthenticated" } }),
      ],
      "no answer says more than 401 or 403",
    );

    const audited = await auditSince({ auditLog: system.plane.auditLog, kc: system.kc }, mark);
    const byFunctions = names.flatMap((fn) => [
      ...writesBy(audited, { username: serviceAccountUser(fn) }),
      ...reviewsBy(audited, { username: serviceAccountUser(fn) }),
    ]);
    assert.deepEqual(byFunctions, [], "no write and no review by any function");
    assert.equal(proxy.counts.requests - requestsBefore, 0, "no API request of any kind by any function");
    assert.deepEqual(await services(), before, "no Service changed (no failure counted, no annotation)");
    const refused = (
      await Promise.all(names.map((fn) => readFile(join(system.plane.dir, "logs", `${fn}.log`), "utf8")))
    ).reduce((n, log) => n + (log.match(/event sender refused/g) ?? []).length, 0);
    assert.equal(refused, sent, "each refusal is in the function's log, with the reason");
    figures.push(
      `forged events: ${sent} to ${names.length} functions (7 kinds of sender × 10 at once each) → 401/403 with a generic body in ${(ms / 1000).toFixed(1)} s; 0 API requests by the functions (proxy count), 0 writes or reviews (audit log), 0 Services changed`,
    );
  });

  it("the legitimate flows still pass afterwards: an event and a ping with their sources' tokens", async () => {
    await core.patchNamespacedService(
      {
        namespace: TENANT,
        name: "web",
        body: { metadata: { annotations: { [annotations.secretName]: "web-tls-2" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    await waitFor(
      "Secret tenant/web-tls-2",
      () => core.readNamespacedSecret({ namespace: TENANT, name: "web-tls-2" }).catch(() => undefined),
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    const ping = await deliver(
      system.functions.get("expiry-scan")!.url,
      pingEvent(SYSTEM_NAMESPACE, "expiry-scan-hourly"),
      await sourceToken(system.kc, "expiry-scan"),
    );
    assert.equal(ping.status, 200, JSON.stringify(ping.json));
  });
});

/** The tenant's token with its payload rewritten to claim a source's identity: the signature no longer matches. */
function forgedJwt(token: string): string {
  const [h, p, s] = token.split(".");
  const claims = JSON.parse(Buffer.from(p!, "base64url").toString("utf8")) as Record<string, unknown>;
  claims.sub = serviceAccountUser(knativeOidcServiceAccount({ kind: "ApiServerSource", name: "services" }));
  return `${h}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${s}`;
}
