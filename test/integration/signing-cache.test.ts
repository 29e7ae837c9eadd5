// "A certificate costs a read and its two writes, and a stale copy of the CA never leaves a certificate from a
// replaced CA": issue-serving-cert signing from its copy of the CA, and its own writes' echoes,
// counted by a proxy in front of the real API server, with the CA replaced under it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { notifyOk } from "../support/object-events.ts";
import { createAnnotatedService } from "../support/services.ts";
import { createNamespace } from "../support/namespaces.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { caStoreIn } from "../support/ca-store.ts";
import { opensslVerifies } from "../support/tls.ts";
import { waitFor } from "../../dev/processes.ts";
import { createLogger } from "../../shared/runtime/logger.ts";
import { systemClock } from "../../shared/runtime/clock.ts";
import { createKube } from "../../shared/kube/client.ts";
import { leafIssuedBy, readLeaf } from "../../shared/pki/index.ts";
import type { CaMaterial, CaStore } from "../../shared/ca-store/store.ts";
import { reconcileService } from "../../shared/serving-cert/reconcile.ts";

const quiet = createLogger("error");
const SIGNED_BY = "service.beta.openshift.io/serving-cert-signed-by";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let proxy: FaultProxy;
let fn: RunningFunction;
let ns: string;
let caNs: string;
/** The CA as rotate-ca's ServiceAccount sees it, to replace it under the function. */
let rotator: CaStore;
let issuerKubeconfig: string;

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  caNs = await createNamespace(cluster.kc, "cache-ca");
  ns = await createNamespace(cluster.kc, "cache");
  issuerKubeconfig = await functionKubeconfig(cluster, "issue-serving-cert", caNs);
  rotator = caStoreIn(
    loadKubeconfig(await functionKubeconfig(cluster, "rotate-ca", caNs)),
    caNs,
    systemClock,
    quiet,
  );
  proxy = await startFaultProxy(cluster);
  fn = await startFunction("issue-serving-cert", {
    kubeconfig: await proxy.kubeconfigVia(issuerKubeconfig),
    env: {
      LOG_LEVEL: "warn",
      KEY_POOL_SIZE: "0",
      CA_NAMESPACE: caNs,
      CA_SECRET_NAME: "signing-key",
      CA_BUNDLE_CONFIGMAP_NAME: "signing-cabundle",
    },
  });
});
after(async () => {
  await fn?.process.stop();
  await proxy?.close();
});

/** The function's answer to an event, and the requests answering it cost (as `METHOD path`). */
async function counted(
  o: { metadata?: k8s.V1ObjectMeta },
  kind: "Service" | "Secret" | "ConfigMap",
  action: "add" | "update",
  mode: "ref" | "resource",
) {
  const from = proxy.requestLog.length;
  const answer = await notifyOk(cluster.kc, fn, o, kind, { action, mode });
  return { answer, requests: proxy.requestLog.slice(from) };
}

/** A new annotated Service, as the services source sends it (Resource mode, "add"). */
async function serviceAdded(name: string) {
  const svc = await createAnnotatedService(core, ns, name, `${name}-tls`);
  return counted(svc, "Service", "add", "resource");
}

const leafOf = async (secret: string) =>
  readLeaf(
    Buffer.from(
      (await core.readNamespacedSecret({ namespace: ns, name: secret })).data!["tls.crt"]!,
      "base64",
    ).toString(),
  )!;
const signedBy = async (service: string) =>
  (await core.readNamespacedService({ namespace: ns, name: service })).metadata?.annotations?.[SIGNED_BY];

describe("issue-serving-cert signs from its copy of the CA", () => {
  it("once the CA is known, a certificate costs three requests (the Service read, its Secret's create, its mark); the echoes cost none", async () => {
    assert.equal((await serviceAdded("first")).answer.outcome, "issued");

    const { answer, requests } = await serviceAdded("second");
    assert.equal(answer.outcome, "issued", JSON.stringify(answer));
    assert.deepEqual(requests, [
      `GET /api/v1/namespaces/${ns}/services/second`,
      `POST /api/v1/namespaces/${ns}/secrets`,
      `PATCH /api/v1/namespaces/${ns}/services/second`,
    ]);

    const secret = await core.readNamespacedSecret({ namespace: ns, name: "second-tls" });
    const secretEcho = await counted(secret, "Secret", "add", "ref");
    assert.equal(secretEcho.answer.reason, "the echo of this process's own create");
    assert.deepEqual(secretEcho.requests, [], "the add echoing its own create");
    const again = await counted(secret, "Secret", "add", "ref");
    assert.equal(again.answer.outcome, "checked", "a second add (a relist) is judged");
    assert.deepEqual(again.requests, [`GET /api/v1/namespaces/${ns}/secrets/second-tls`]);

    const service = await core.readNamespacedService({ namespace: ns, name: "second" });
    assert.deepEqual((await counted(service, "Service", "update", "resource")).requests, [], "its own mark");
  });

  it("a stale Service in its event is read again: the Secret it names now is issued, none for the stale name", async () => {
    const svc = await createAnnotatedService(core, ns, "moved", "moved-tls");
    // Renamed its Secret before the (late) event about the old version arrives.
    await core.patchNamespacedService(
      {
        namespace: ns,
        name: "moved",
        body: {
          metadata: { annotations: { "service.beta.openshift.io/serving-cert-secret-name": "moved-2" } },
        },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const { answer } = await counted(svc, "Service", "add", "resource");
    assert.equal(answer.outcome, "issued", JSON.stringify(answer));
    assert.equal(answer.secret, "moved-2", "judged again from the Service as it is now");
    assert.ok((await core.readNamespacedSecret({ namespace: ns, name: "moved-2" })).data?.["tls.crt"]);
    const stale = await core
      .readNamespacedSecret({ namespace: ns, name: "moved-tls" })
      .catch(() => undefined);
    assert.equal(stale, undefined, "nothing for the name the Service no longer asks for");
  });

  it("a CA replaced under its copy: what the copy signed is re-issued on the bundle's event, and nothing is signed from it after", async () => {
    const { before: old, current } = await replaceCa();
    await rotator.publishBundle(current);

    // The bundle's event has not come: the copy is all the function knows, and signs.
    const early = await serviceAdded("early");
    assert.equal(early.answer.outcome, "issued");
    assert.equal(
      await signedBy("early"),
      old.name,
      "signed from the stale copy (the window this test closes)",
    );

    const bundle = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    const news = await counted(bundle, "ConfigMap", "update", "ref");
    assert.equal(news.answer.ca, current.name, JSON.stringify(news.answer));
    await waitFor(
      "early re-issued from the current CA",
      async () => (leafIssuedBy(await leafOf("early-tls"), current.signer.cert) ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    await waitFor(
      "early marked as signed by the current CA",
      async () => ((await signedBy("early")) === current.name ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 50 },
    );
    assert.ok(
      await chainVerifies("early-tls", current),
      "trusted by the bundle that no longer holds the old CA",
    );

    const late = await serviceAdded("late");
    assert.equal(late.answer.outcome, "issued");
    assert.equal(await signedBy("late"), current.name);
    assert.ok(await chainVerifies("late-tls", current));
  });

  it("a certificate from a CA newer than its copy sends it to the CA Secret first, so a stale copy never undoes a fan-out", async () => {
    const { before, current: newer } = await replaceCa();
    assert.notEqual(newer.name, before.name);
    // The scan's fan-out, elsewhere: "late" re-issued from the newer CA, its Service marked so.
    const asIssuer = loadKubeconfig(issuerKubeconfig);
    const fanOut = await reconcileService(
      {
        kube: createKube(asIssuer),
        ca: caStoreIn(asIssuer, caNs, systemClock, quiet),
        clock: systemClock,
        log: quiet,
        component: "expiry-scan",
        validityDays: 730,
        refreshFraction: 1 / 3,
      },
      ns,
      "late",
    );
    assert.equal(fanOut.outcome, "issued");
    const fannedOut = await core.readNamespacedSecret({ namespace: ns, name: "late-tls" });

    // Its echo reaches the function, whose copy is still the CA before.
    const { answer, requests } = await counted(fannedOut, "Secret", "update", "ref");
    const outcome = (answer.services as Array<{ outcome: string }>)[0]!.outcome;
    assert.equal(outcome, "current", JSON.stringify(answer));
    assert.ok(
      requests.includes(`GET /api/v1/namespaces/${caNs}/secrets/signing-key`),
      `read the CA Secret: ${requests.join(", ")}`,
    );
    const after = await core.readNamespacedSecret({ namespace: ns, name: "late-tls" });
    assert.equal(after.data!["tls.crt"], fannedOut.data!["tls.crt"], "left on the newer CA");
    assert.equal(await signedBy("late"), newer.name);
  });
});

/** The CA replaced (replace mode: the old one trusted no more) behind the function's back, as rotate-ca would. */
async function replaceCa(): Promise<{ before: CaMaterial; current: CaMaterial }> {
  const before = await rotator.signingMaterial();
  const replaced = await rotator.rotate("test", "replace");
  assert.ok(replaced);
  return { before, current: replaced.material };
}

function loadKubeconfig(path: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

async function chainVerifies(secret: string, material: CaMaterial): Promise<boolean> {
  const s = await core.readNamespacedSecret({ namespace: ns, name: secret });
  return opensslVerifies(material.bundlePem, Buffer.from(s.data!["tls.crt"]!, "base64").toString());
}
