// "The echo of its own write costs one read, and nothing that changed is ever skipped": issue-serving-cert's
// memory of the versions it settled, counted by a proxy in front of the real API server.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { notifyOk } from "../support/object-events.ts";
import { createAnnotatedService } from "../support/services.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let proxy: FaultProxy;
let fn: RunningFunction;
let ns: string;
const merge = k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const SETTLED = "unchanged since this process settled it";

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, "service-ca");
  ns = await createNamespace(cluster.kc, "settled");
  proxy = await startFaultProxy(cluster);
  fn = await startFunction("issue-serving-cert", {
    kubeconfig: await proxy.kubeconfigVia(await functionKubeconfig(cluster, "issue-serving-cert")),
    env: { LOG_LEVEL: "warn", KEY_POOL_SIZE: "0" },
  });
});
after(async () => {
  await fn?.process.stop();
  await proxy?.close();
});

/** The function's answer to an event about `o`, and how many API requests answering it cost. */
async function counted(
  o: { metadata?: k8s.V1ObjectMeta },
  kind: "Service" | "Secret",
  mode: "ref" | "resource" = "ref",
) {
  const before = proxy.counts.requests;
  const answer = await notifyOk(cluster.kc, fn, o, kind, { action: "update", mode });
  return { answer, requests: proxy.counts.requests - before };
}

const readSecret = (name: string) => core.readNamespacedSecret({ namespace: ns, name });
const readService = (name: string) => core.readNamespacedService({ namespace: ns, name });

describe("issue-serving-cert remembers what it settled", () => {
  it("the update events echoing its own Secret and Service writes cost one read each (none with the version)", async () => {
    const svc = await createAnnotatedService(core, ns, "web", "web-tls");
    assert.equal((await counted(svc, "Service")).answer.outcome, "issued");

    const secretEcho = await counted(await readSecret("web-tls"), "Secret");
    assert.deepEqual(secretEcho.answer, {
      ok: true,
      outcome: "checked",
      services: [{ service: "web", outcome: "current", secret: "web-tls", reason: SETTLED }],
    });
    assert.equal(secretEcho.requests, 1, "the echo of its own Secret: one GET");

    const serviceEcho = await counted(await readService("web"), "Service");
    assert.equal(serviceEcho.answer.reason, SETTLED, JSON.stringify(serviceEcho.answer));
    assert.equal(serviceEcho.requests, 1, "the echo of its own Service patch: one GET");

    // As the services source sends it (Resource mode), the object's version shows it: no request at all.
    const resourceEcho = await counted(await readService("web"), "Service", "resource");
    assert.equal(resourceEcho.answer.reason, SETTLED, JSON.stringify(resourceEcho.answer));
    assert.equal(resourceEcho.requests, 0, "the echo of its own Service patch, in Resource mode: no request");
  });

  it("a Secret someone else changed is never skipped: it is judged, and re-issued", async () => {
    const before = await readSecret("web-tls");
    await core.patchNamespacedSecret(
      {
        namespace: ns,
        name: "web-tls",
        body: { data: { "tls.crt": Buffer.from("not a certificate").toString("base64") } },
      },
      merge,
    );
    const { answer } = await counted(await readSecret("web-tls"), "Secret");
    assert.equal(answer.outcome, "checked", JSON.stringify(answer));
    assert.equal((answer.services as Array<{ outcome: string }>)[0]!.outcome, "issued");
    const after = await readSecret("web-tls");
    assert.notEqual(after.data!["tls.crt"], before.data!["tls.crt"], "a new certificate");
    assert.match(Buffer.from(after.data!["tls.crt"]!, "base64").toString(), /BEGIN CERTIFICATE/);
  });

  it("a Service someone else changed is judged again, not taken for settled", async () => {
    await core.patchNamespacedService(
      { namespace: ns, name: "web", body: { metadata: { labels: { tier: "front" } } } },
      merge,
    );
    const { answer, requests } = await counted(await readService("web"), "Service", "resource");
    assert.equal(answer.outcome, "current");
    assert.notEqual(answer.reason, SETTLED);
    // The Service came with the event and the CA from the function's copy: judging it reads its Secret.
    assert.ok(requests >= 1, `read the Secret (${requests} requests)`);
    // Settled by that judgement: the same version again costs nothing.
    assert.equal((await counted(await readService("web"), "Service", "resource")).requests, 0);
  });

  it("a deleted Secret is re-created at once, whatever was settled before", async () => {
    await core.deleteNamespacedSecret({ namespace: ns, name: "web-tls" });
    const { answer } = await counted(
      { metadata: { name: "web-tls", namespace: ns, resourceVersion: "1" } },
      "Secret",
    );
    assert.equal(
      (answer.services as Array<{ outcome: string }>)[0]!.outcome,
      "issued",
      JSON.stringify(answer),
    );
    assert.ok((await readSecret("web-tls")).data?.["tls.crt"]);
  });
});
