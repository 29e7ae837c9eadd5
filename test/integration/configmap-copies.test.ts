// "An event whose own copy needs nothing costs no request; whatever is written reads the bundle first":
// inject-configmap answering Resource-mode events, counted by a proxy in front of the real API server, with the
// published bundle changed under it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { notifyOk } from "../support/object-events.ts";
import { createNamespace } from "../support/namespaces.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { createAuthority } from "../../shared/pki/index.ts";
import { annotations, caDefaults, dataKeys } from "../../shared/names.ts";
import { COPY_REASON } from "../../shared/inject/injector.ts";

const INJECT = annotations.injectCaBundle;
const INJECTED = dataKeys.injectedBundle;
const BUNDLE_CM = caDefaults.bundleConfigMapName;

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let proxy: FaultProxy;
let fn: RunningFunction;
let ns: string;
let caNs: string;
let bundleA: string;
let bundleAB: string;

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  caNs = await createNamespace(cluster.kc, "copies-ca");
  ns = await createNamespace(cluster.kc, "copies");
  const now = new Date();
  const a = await createAuthority({ now });
  const b = await createAuthority({ now: new Date(now.getTime() + 1000) });
  bundleA = a.certPem;
  bundleAB = a.certPem + b.certPem;
  await core.createNamespacedConfigMap({
    namespace: caNs,
    body: { metadata: { name: BUNDLE_CM }, data: { "ca-bundle.crt": bundleA } },
  });
  proxy = await startFaultProxy(cluster);
  fn = await startFunction("inject-configmap", {
    kubeconfig: await proxy.kubeconfigVia(await functionKubeconfig(cluster, "inject-configmap", caNs)),
    env: { LOG_LEVEL: "warn", CA_NAMESPACE: caNs },
  });
  // The first event's sender check fetches the issuer's keys and reviews the token, and the first read of an object
  // asks for the API's resources, once each: the counts start after them.
  const warmUp = await notifyOk(cluster.kc, fn, await create("warm-up", true), "ConfigMap", {
    mode: "resource",
  });
  assert.equal(warmUp.outcome, "injected", JSON.stringify(warmUp));
});
after(async () => {
  await fn?.process.stop();
  await proxy?.close();
});

/** The function's answer to the Resource-mode event carrying `o`, and the API requests answering it cost. */
async function counted(o: k8s.V1ConfigMap, action: "add" | "update" = "update") {
  const before = proxy.requestLog.length;
  const answer = await notifyOk(cluster.kc, fn, o, "ConfigMap", { action, mode: "resource" });
  return { answer, requests: proxy.requestLog.slice(before) };
}

const read = (name: string) => core.readNamespacedConfigMap({ namespace: ns, name });
const create = (name: string, annotated: boolean) =>
  core.createNamespacedConfigMap({
    namespace: ns,
    body: {
      metadata: { name, ...(annotated ? { annotations: { [INJECT]: "true" } } : {}) },
      data: { a: "b" },
    },
  });

describe("inject-configmap judges an event's own copy", () => {
  it("a copy not annotated costs no request; an annotated one is read and injected; its echo costs none", async () => {
    const plain = await counted(await create("plain", false), "add");
    assert.deepEqual(plain.answer, { ok: true, outcome: "not-annotated", reason: COPY_REASON });
    assert.deepEqual(plain.requests, []);

    const added = await counted(await create("trust", true), "add");
    assert.equal(added.answer.outcome, "injected", JSON.stringify(added.answer));
    // The bundle and the ConfigMap are read at once (in either order), then written.
    const paths = added.requests.map((r) => r.split("?")[0]);
    assert.deepEqual(
      [...paths.slice(0, 2).sort(), ...paths.slice(2)],
      [
        ...[
          `GET /api/v1/namespaces/${caNs}/configmaps/${BUNDLE_CM}`,
          `GET /api/v1/namespaces/${ns}/configmaps/trust`,
        ].sort(),
        `PATCH /api/v1/namespaces/${ns}/configmaps/trust`,
      ],
    );
    const injected = await read("trust");
    assert.equal(injected.data![INJECTED], bundleA);

    const echo = await counted(injected);
    assert.deepEqual(echo.answer, { ok: true, outcome: "current", reason: COPY_REASON });
    assert.deepEqual(echo.requests, [], "the echo of its own injection: no request");
  });

  it("a copy someone changed is read and injected again", async () => {
    const emptied = await core.patchNamespacedConfigMap(
      { namespace: ns, name: "trust", body: [{ op: "remove", path: `/data/${INJECTED}` }] },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
    );
    assert.equal(emptied.data?.[INJECTED], undefined);
    const { answer, requests } = await counted(emptied);
    assert.equal(answer.outcome, "injected", JSON.stringify(answer));
    assert.equal(requests.length, 3, requests.join("\n"));
    assert.equal((await read("trust")).data![INJECTED], bundleA);
  });

  it("with the bundle changed under its memory, a write carries the new bundle, and the bundle's event re-injects what its memory skipped", async () => {
    await core.patchNamespacedConfigMap(
      { namespace: caNs, name: BUNDLE_CM, body: { data: { "ca-bundle.crt": bundleAB } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );

    // Its memory still says bundle A: a copy holding A is skipped (what the bundle's event is on its way to mend)...
    const stale = await counted(await read("trust"));
    assert.equal(stale.answer.outcome, "current");
    assert.deepEqual(stale.requests, []);

    // ...but what it writes, it reads the bundle for first: a newly annotated ConfigMap gets A+B, never A.
    const fresh = await counted(await create("late", true), "add");
    assert.equal(fresh.answer.outcome, "injected");
    assert.equal((await read("late")).data![INJECTED], bundleAB);

    const fanOut = await notifyOk(
      cluster.kc,
      fn,
      await core.readNamespacedConfigMap({ namespace: caNs, name: BUNDLE_CM }),
      "ConfigMap",
      { action: "update", mode: "resource" },
    );
    assert.equal(fanOut.outcome, "bundle-fan-out", JSON.stringify(fanOut));
    assert.equal((await read("trust")).data![INJECTED], bundleAB);

    // Now its memory is A+B: the copy holding A is judged stale, read, and found current (nothing written).
    const beforeRv = (await read("trust")).metadata!.resourceVersion;
    const old = { ...(await read("trust")), data: { a: "b", [INJECTED]: bundleA } };
    const late = await counted(old);
    assert.equal(late.answer.outcome, "current", JSON.stringify(late.answer));
    assert.equal(late.requests.filter((r) => r.startsWith("PATCH")).length, 0);
    assert.equal((await read("trust")).metadata!.resourceVersion, beforeRv);
  });
});
