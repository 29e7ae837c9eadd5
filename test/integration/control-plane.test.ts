// The control plane every other test stands on: real, RBAC-enforcing, usable with kubectl, and tidy on stop.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane } from "../../dev/controlplane/control-plane.ts";
import { kubectl } from "../support/kubectl.ts";
import { waitFor } from "../../dev/processes.ts";

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe("control plane", () => {
  it("starts etcd, kube-apiserver and kube-controller-manager, serves a real cluster, and stops leaving nothing", async () => {
    const plane = await startControlPlane({ log: (l) => console.log(`[control-plane] ${l}`) });
    const pids = plane.processes().map((p) => p.pid);
    try {
      assert.deepEqual(
        plane
          .processes()
          .map((p) => p.name)
          .sort(),
        ["etcd", "kube-apiserver", "kube-controller-manager"],
      );
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(plane.kubeconfig);
      const core = kc.makeApiClient(k8s.CoreV1Api);

      await core.createNamespace({ body: { metadata: { name: "foundation" } } });
      await core.createNamespacedService({
        namespace: "foundation",
        body: {
          metadata: { name: "web" },
          spec: {
            ports: [{ port: 443, targetPort: 8443 as unknown as k8s.IntOrString }],
            selector: { app: "web" },
          },
        },
      });

      const svc = JSON.parse(await kubectl(plane, "get", "service", "web", "-n", "foundation", "-o", "json"));
      assert.equal(svc.metadata.name, "web");
      assert.match(svc.spec.clusterIP, /^10\.96\.\d+\.\d+$/, "allocated from the /16 service range");
      assert.match(await kubectl(plane, "get", "ns"), /foundation/);
      const version = JSON.parse(await kubectl(plane, "version", "-o", "json"));
      assert.equal(version.serverVersion.gitVersion, "v1.34.3");
      assert.equal(version.clientVersion.gitVersion, "v1.34.3");

      // RBAC is real: a ServiceAccount token with no role is authenticated but refused.
      await core.createNamespacedServiceAccount({
        namespace: "foundation",
        body: { metadata: { name: "nobody" } },
      });
      const token = await core.createNamespacedServiceAccountToken({
        namespace: "foundation",
        name: "nobody",
        body: { spec: { audiences: [], expirationSeconds: 600 } },
      });
      const asNobody = new k8s.KubeConfig();
      asNobody.loadFromOptions({
        clusters: [{ name: "local", server: plane.server, caFile: plane.caFile }],
        users: [{ name: "nobody", token: token.status!.token }],
        contexts: [{ name: "local", cluster: "local", user: "nobody" }],
        currentContext: "local",
      });
      await assert.rejects(
        asNobody.makeApiClient(k8s.CoreV1Api).listNamespacedService({ namespace: "foundation" }),
        (err: unknown) => err instanceof k8s.ApiException && err.code === 403,
      );
      const review = await kc
        .makeApiClient(k8s.AuthenticationV1Api)
        .createTokenReview({ body: { spec: { token: token.status!.token } } });
      assert.equal(review.status?.authenticated, true);
      assert.equal(review.status?.user?.username, "system:serviceaccount:foundation:nobody");

      // The controller manager runs: deleting a Service garbage-collects what it owns; namespaces finalize.
      const owner = await core.readNamespacedService({ namespace: "foundation", name: "web" });
      await core.createNamespacedConfigMap({
        namespace: "foundation",
        body: {
          metadata: {
            name: "owned",
            ownerReferences: [{ apiVersion: "v1", kind: "Service", name: "web", uid: owner.metadata!.uid! }],
          },
        },
      });
      await core.deleteNamespacedService({ namespace: "foundation", name: "web" });
      await waitFor(
        "garbage collection of the owned ConfigMap",
        async () =>
          await core.readNamespacedConfigMap({ namespace: "foundation", name: "owned" }).then(
            () => undefined,
            () => true,
          ),
      );
      await waitFor(
        "default ServiceAccount from the controller manager",
        async () =>
          await core.readNamespacedServiceAccount({ namespace: "foundation", name: "default" }).then(
            () => true,
            () => undefined,
          ),
      );
    } finally {
      await plane.stop();
    }
    for (const pid of pids) assert.equal(alive(pid), false, `process ${pid} is gone`);
    assert.equal(existsSync(plane.dir), false, "the data dir is removed");
    const leftovers = execFileSync("ps", ["-eo", "pid,args"])
      .toString()
      .split("\n")
      .filter((l) => l.includes(plane.dir));
    assert.deepEqual(leftovers, []);
  });
});
