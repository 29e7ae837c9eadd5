// The Prometheus metrics move by exactly what happened: scraped from real function processes before and after a
// run of issuances, injections, duplicates and a malformed event against the real API server.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { sourceToken } from "../../dev/events.ts";
import { notifyOk } from "../support/object-events.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { annotations } from "../../shared/names.ts";
import { parseCertificates } from "../../shared/pki/index.ts";
import { scrape } from "../../dev/metrics.ts";

const CA_NS = "service-ca";
const INJECT = "service.beta.openshift.io/inject-cabundle";
let cluster: TestCluster;
let core: k8s.CoreV1Api;
let ns: string;
const fns: Record<string, RunningFunction> = {};

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, CA_NS);
  ns = await createNamespace(cluster.kc, "metrics");
  for (const name of ["issue-serving-cert", "inject-configmap"]) {
    fns[name] = await startFunction(name, {
      kubeconfig: await functionKubeconfig(cluster, name),
      env: { LOG_LEVEL: "warn" },
    });
  }
});
after(() => Promise.all(Object.values(fns).map((f) => f.process.stop())));

async function send(fn: string, o: { metadata?: k8s.V1ObjectMeta }, kind: string) {
  await notifyOk(cluster.kc, fns[fn]!, o, kind, { action: "update" });
}

/** What moved between two scrapes, keeping only the series that changed. */
function moved(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    const series =
      !k.includes("_bucket{") &&
      !k.includes("_sum{") &&
      !k.startsWith("service_ca_expiry_time") &&
      !k.startsWith("service_ca_trusted_oldest_expiry_time");
    if (d !== 0 && series) out[k] = d;
  }
  return out;
}

describe("metrics", () => {
  it("issued, skipped, injected and errors move by exactly the work done; the CA gauge is the CA's not-after", async () => {
    const serving = fns["issue-serving-cert"]!.url;
    const injector = fns["inject-configmap"]!.url;
    const [s0, i0] = [await scrape(serving), await scrape(injector)];

    const services = [];
    for (const name of ["a", "b", "c"]) {
      services.push(
        await core.createNamespacedService({
          namespace: ns,
          body: {
            metadata: { name, annotations: { [annotations.secretName]: `${name}-tls` } },
            spec: { ports: [{ port: 443 }] },
          },
        }),
      );
    }
    for (const svc of services) await send("issue-serving-cert", svc, "Service"); // 3 issued
    await send("issue-serving-cert", services[0]!, "Service"); // a duplicate: no write
    // Malformed, from a real source (a request without one is refused before its body is read).
    const bad = await fetch(serving, {
      method: "POST",
      headers: {
        "content-type": "text/plain",
        authorization: `Bearer ${await sourceToken(cluster.kc, "issue-serving-cert")}`,
      },
      body: "{",
    });
    assert.equal(bad.status, 400);

    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "trust", annotations: { [INJECT]: "true" } } },
    });
    await send("inject-configmap", cm, "ConfigMap"); // injected
    await send("inject-configmap", cm, "ConfigMap"); // current: skipped

    const [s1, i1] = [await scrape(serving), await scrape(injector)];
    const fn = (n: string) => `function="${n}"`;
    assert.deepEqual(moved(s0, s1), {
      [`service_ca_certificates_issued_total{${fn("issue-serving-cert")},reason="secret missing"}`]: 3,
      [`service_ca_issuance_duration_seconds_count{${fn("issue-serving-cert")}}`]: 3,
      [`service_ca_writes_skipped_total{${fn("issue-serving-cert")},kind="Secret"}`]: 1,
      [`service_ca_requests_total{${fn("issue-serving-cert")},outcome="ok",route="cloudevent",status="200"}`]: 4,
      [`service_ca_requests_total{${fn("issue-serving-cert")},outcome="malformed",route="cloudevent",status="400"}`]: 1,
      [`service_ca_errors_total{${fn("issue-serving-cert")},reason="malformed",route="cloudevent"}`]: 1,
      [`service_ca_request_duration_seconds_count{${fn("issue-serving-cert")},route="cloudevent"}`]: 5,
    });
    assert.deepEqual(moved(i0, i1), {
      [`service_ca_injections_total{${fn("inject-configmap")},kind="ConfigMap"}`]: 1,
      [`service_ca_writes_skipped_total{${fn("inject-configmap")},kind="ConfigMap"}`]: 1,
      [`service_ca_requests_total{${fn("inject-configmap")},outcome="ok",route="cloudevent",status="200"}`]: 2,
      [`service_ca_request_duration_seconds_count{${fn("inject-configmap")},route="cloudevent"}`]: 2,
    });

    const ca = await core.readNamespacedSecret({ namespace: CA_NS, name: "signing-key" });
    const caCert = parseCertificates(Buffer.from(ca.data!["tls.crt"]!, "base64").toString())[0]!;
    assert.equal(
      s1.get(`service_ca_expiry_time_seconds{${fn("issue-serving-cert")}}`),
      Math.floor(caCert.notAfter.getTime() / 1000),
    );
    // One CA in the bundle so far: the oldest trusted one is the current one.
    assert.equal(
      s1.get(`service_ca_trusted_oldest_expiry_time_seconds{${fn("issue-serving-cert")}}`),
      Math.floor(caCert.notAfter.getTime() / 1000),
    );
    // The injector never loads the CA: it exports no expiry at all (an unset gauge would read as 0, i.e. 1970).
    assert.deepEqual(
      [...i1.keys()].filter((k) => k.startsWith("service_ca_expiry_time_seconds")),
      [],
    );
  });
});
