// "One tenant's churn cannot hold another's certificate": issue-serving-cert answers its sources at once when they
// ask (respondasync) and works through a queue per namespace, one entry per object, against the real API server.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { apiServerEvent, deliver, sourceToken } from "../../dev/events.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { asEvent } from "../support/object-events.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { scrape } from "../../dev/metrics.ts";
import { annotations } from "../../shared/names.ts";
import { waitFor } from "../../dev/processes.ts";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let fn: RunningFunction;

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, "service-ca");
  fn = await startFunction("issue-serving-cert", {
    kubeconfig: await functionKubeconfig(cluster, "issue-serving-cert"),
    // One object of a namespace at a time, and every key generated on demand, so the queue is seen filling.
    env: { LOG_LEVEL: "warn", MAX_IN_FLIGHT_PER_NAMESPACE: "1", KEY_POOL_SIZE: "0" },
  });
});
after(() => fn?.process.stop());

async function annotatedService(namespace: string, name: string) {
  return core.createNamespacedService({
    namespace,
    body: {
      metadata: { name, annotations: { [annotations.secretName]: `${name}-tls` } },
      spec: { ports: [{ port: 443 }] },
    },
  });
}

/** The event the `services` source sends, with the extension its ceOverrides set (unless `asSource` is false). */
async function serviceEvent(svc: k8s.V1Service, asSource = true) {
  const ev = apiServerEvent(asEvent(svc, "Service"), "add");
  if (asSource) ev.headers["ce-respondasync"] = "true";
  const res = await deliver(fn.url, ev, await sourceToken(cluster.kc, fn.name));
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return res.json as { outcome: string; queuedEvents?: number };
}

const issued = (namespace: string, name: string) =>
  waitFor(
    `${namespace}/${name}-tls`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace, name: `${name}-tls` }).catch(() => undefined);
      return s?.data?.["tls.crt"] ? s : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 100 },
  );

describe("issue-serving-cert's queue per namespace", () => {
  it("a noisy namespace's events queue behind each other, once per Service; a quiet one's starts at once; all are issued", async () => {
    const noisy = await createNamespace(cluster.kc, "noisy");
    const quiet = await createNamespace(cluster.kc, "quiet");
    const services = await Promise.all(Array.from({ length: 5 }, (_, i) => annotatedService(noisy, `n${i}`)));
    const calm = await annotatedService(quiet, "q");

    const answers = [];
    for (const svc of services) answers.push((await serviceEvent(svc)).outcome);
    assert.deepEqual(answers, ["started", "queued", "queued", "queued", "queued"]);
    assert.equal((await serviceEvent(services[3]!)).outcome, "coalesced", "a queued Service is queued once");
    const quietAnswer = await serviceEvent(calm);
    assert.equal(quietAnswer.outcome, "started", "the quiet namespace does not wait behind the noisy one");
    assert.ok((quietAnswer.queuedEvents ?? 0) >= 1, JSON.stringify(quietAnswer));

    await issued(quiet, "q");
    for (let i = 0; i < services.length; i++) await issued(noisy, `n${i}`);
    const metrics = await scrape(fn.url);
    const queued = [...metrics.entries()].find(([k]) => k.startsWith("service_ca_queued_events"));
    assert.equal(queued?.[1], 0, "the backlog is empty once every Secret is there");
    const issuedTotal = [...metrics.entries()]
      .filter(([k]) => k.startsWith("service_ca_certificates_issued_total"))
      .reduce((n, [, v]) => n + v, 0);
    assert.equal(issuedTotal, 6, "each Service got one certificate: the coalesced event cost no second one");
  });

  it("a caller that does not ask for an early answer still gets the outcome", async () => {
    const ns = await createNamespace(cluster.kc, "direct");
    const svc = await annotatedService(ns, "web");
    assert.equal((await serviceEvent(svc, false)).outcome, "issued");
    assert.equal((await serviceEvent(svc, false)).outcome, "current");
  });
});
