// loadInCluster (shared/kube/client.ts) must configure exactly what client-node's loadFromCluster does, which it
// replaces to skip node:net's IPv6 pattern at every start.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { loadInCluster } from "../../shared/kube/client.ts";

function withEnv<T>(env: Record<string, string>, f: () => T): T {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return f();
  } finally {
    for (const [k, v] of Object.entries(saved))
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
  }
}

const seen = (kc: k8s.KubeConfig) => {
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  return {
    server: cluster?.server,
    caFile: cluster?.caFile,
    skipTLSVerify: cluster?.skipTLSVerify,
    authProvider: user?.authProvider,
  };
};

describe("in-cluster credentials", () => {
  for (const host of ["10.96.0.1", "fd00:10:96::1", "::1", "kubernetes.default.svc"])
    for (const port of ["443", "6443", "80", "8080", "8001"])
      it(`as client-node's loadFromCluster: ${host} port ${port}`, () => {
        const env = { KUBERNETES_SERVICE_HOST: host, KUBERNETES_SERVICE_PORT: port };
        const upstream = new k8s.KubeConfig();
        withEnv(env, () => upstream.loadFromCluster());
        const ours = new k8s.KubeConfig();
        loadInCluster(ours, env);
        assert.deepEqual(seen(ours), seen(upstream));
        assert.ok(seen(ours).server?.startsWith("http"));
      });
});
