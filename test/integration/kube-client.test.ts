// The functions' API client keeps its TLS connections to the API server open and reuses them, counted by a proxy
// in front of the real API server; client-node as shipped opens one per request (the control).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { SYSTEM_NAMESPACE } from "../../dev/local-system/local-system.ts";
import { createKube, loadKubeConfig, type Kube } from "../../shared/kube/client.ts";
import { readAny, readOptional } from "../../shared/kube/objects.ts";
import { createObject, deleteObject, readObject } from "../../shared/kube/core.ts";
import { dataKeys } from "../../shared/names.ts";

let cluster: TestCluster;
let proxy: FaultProxy;
let kubeconfig: string;

before(async () => {
  cluster = await testCluster();
  proxy = await startFaultProxy(cluster);
  kubeconfig = await proxy.kubeconfigVia(await functionKubeconfig(cluster, "issue-serving-cert"));
  // What is read: the bundle ConfigMap, which this identity may read, published here if no other test has yet.
  await cluster.kc
    .makeApiClient(k8s.CoreV1Api)
    .createNamespacedConfigMap({
      namespace: SYSTEM_NAMESPACE,
      body: { metadata: { name: "signing-cabundle" }, data: { [dataKeys.caBundle]: "a bundle" } },
    })
    .catch((err: unknown) => {
      if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
    });
});
after(() => proxy?.close());

async function opened(work: () => Promise<unknown>): Promise<{ connections: number; requests: number }> {
  const [connections, requests] = [proxy.counts.connections, proxy.counts.requests];
  await work();
  return { connections: proxy.counts.connections - connections, requests: proxy.counts.requests - requests };
}

const shippedRead = (core: k8s.CoreV1Api) =>
  readOptional("bundle", () =>
    core.readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" }),
  );
const readBundle = (kube: Kube) => readObject(kube, "ConfigMap", SYSTEM_NAMESPACE, "signing-cabundle");

describe("the API client", () => {
  it("client-node as shipped opens a connection per request (the control: the proxy counts them)", async () => {
    const core = loadKubeConfig(kubeconfig).makeApiClient(k8s.CoreV1Api);
    const seen = await opened(async () => {
      for (let i = 0; i < 20; i++) await shippedRead(core);
    });
    assert.deepEqual(seen, { connections: 20, requests: 20 });
  });

  it("reuses one connection for requests one after another, by kind and by apiVersion and kind", async () => {
    const kube = createKube(loadKubeConfig(kubeconfig));
    const seen = await opened(async () => {
      for (let i = 0; i < 10; i++) {
        const [typed, generic] = [
          await readBundle(kube),
          await readAny<k8s.V1ConfigMap>(kube, "bundle", {
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" },
          }),
        ];
        assert.ok(typed?.data?.[dataKeys.caBundle] && generic?.metadata?.uid === typed.metadata?.uid);
      }
    });
    // 20 reads on one connection, and no discovery request: the REST paths are known (shared/kube/paths.ts)
    assert.deepEqual(seen, { connections: 1, requests: 20 });
  });

  it("opens at most one connection per request in flight, and reuses them for the next burst", async () => {
    const kube = createKube(loadKubeConfig(kubeconfig));
    const burst = () => Promise.all(Array.from({ length: 8 }, () => readBundle(kube)));
    const first = await opened(burst);
    const second = await opened(burst);
    assert.equal(first.requests, 8);
    assert.ok(first.connections >= 1 && first.connections <= 8, `${first.connections} connections`);
    assert.deepEqual(second, { connections: 0, requests: 8 });
  });

  it("writes with a body, DELETE included, leave the connection fit for the next request", async () => {
    // A DELETE's body sent without its length was read by the API server as the next request: 400 for that one.
    const kube = createKube(loadKubeConfig(cluster.kubeconfig));
    const made = [];
    for (let i = 0; i < 5; i++)
      made.push(await createObject(kube, "ConfigMap", "default", { metadata: { name: `kube-client-${i}` } }));
    for (const o of made) {
      await deleteObject(kube, "ConfigMap", "default", o.metadata!.name!, {
        uid: o.metadata!.uid,
        resourceVersion: o.metadata!.resourceVersion,
      });
      assert.equal(await readObject(kube, "ConfigMap", "default", o.metadata!.name!), undefined);
    }
  });
});
