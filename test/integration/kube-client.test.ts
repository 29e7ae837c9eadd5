// The functions' API client keeps its TLS connections to the API server open and reuses them, counted by a proxy
// in front of the real API server; client-node as shipped opens one per request (the control).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { SYSTEM_NAMESPACE } from "../../dev/local-system/local-system.ts";
import { createKube, loadKubeConfig } from "../../shared/kube/client.ts";
import { readOptional } from "../../shared/kube/objects.ts";

let cluster: TestCluster;
let proxy: FaultProxy;
let kubeconfig: string;

before(async () => {
  cluster = await testCluster();
  proxy = await startFaultProxy(cluster);
  kubeconfig = await proxy.kubeconfigVia(await functionKubeconfig(cluster, "issue-serving-cert"));
});
after(() => proxy?.close());

async function opened(work: () => Promise<unknown>): Promise<{ connections: number; requests: number }> {
  const [connections, requests] = [proxy.counts.connections, proxy.counts.requests];
  await work();
  return { connections: proxy.counts.connections - connections, requests: proxy.counts.requests - requests };
}

const readBundle = (core: k8s.CoreV1Api) =>
  readOptional("bundle", () =>
    core.readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" }),
  );

describe("the API client", () => {
  it("client-node as shipped opens a connection per request (the control: the proxy counts them)", async () => {
    const core = loadKubeConfig(kubeconfig).makeApiClient(k8s.CoreV1Api);
    const seen = await opened(async () => {
      for (let i = 0; i < 20; i++) await readBundle(core);
    });
    assert.deepEqual(seen, { connections: 20, requests: 20 });
  });

  it("reuses one connection for requests one after another, through both of its APIs", async () => {
    const kube = createKube(loadKubeConfig(kubeconfig));
    const seen = await opened(async () => {
      for (let i = 0; i < 10; i++) {
        await readBundle(kube.core);
        await readOptional("bundle", () =>
          kube.objects.read({
            apiVersion: "v1",
            kind: "ConfigMap",
            metadata: { namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" },
          }),
        );
      }
    });
    // 20 reads and the generic API's one discovery request (which resource serves ConfigMaps), on one connection
    assert.deepEqual(seen, { connections: 1, requests: 21 });
  });

  it("opens at most one connection per request in flight, and reuses them for the next burst", async () => {
    const kube = createKube(loadKubeConfig(kubeconfig));
    const burst = () => Promise.all(Array.from({ length: 8 }, () => readBundle(kube.core)));
    const first = await opened(burst);
    const second = await opened(burst);
    assert.equal(first.requests, 8);
    assert.ok(first.connections >= 1 && first.connections <= 8, `${first.connections} connections`);
    assert.deepEqual(second, { connections: 0, requests: 8 });
  });
});
