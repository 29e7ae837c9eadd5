// The cluster a test runs against: the one `npm test` started (passed in the environment), or a fresh one
// when a test file is run on its own.
import { after } from "node:test";
import { dirname } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../../dev/controlplane/control-plane.ts";
import { installInfra } from "../../dev/local-system/local-system.ts";

export interface TestCluster {
  kubeconfig: string;
  kubectl: string;
  server: string;
  caFile: string;
  auditLog: string;
  /** where the control plane's processes write their logs */
  logDir: string;
  /** the control plane's data directory (kubeconfigs for ServiceAccounts go here) */
  dir: string;
  kc: k8s.KubeConfig;
}

export function clusterEnv(plane: ControlPlane): Record<string, string> {
  return {
    SERVICE_CA_TEST_KUBECONFIG: plane.kubeconfig,
    SERVICE_CA_TEST_KUBECTL: plane.kubectl,
    SERVICE_CA_TEST_SERVER: plane.server,
    SERVICE_CA_TEST_CA_FILE: plane.caFile,
    SERVICE_CA_TEST_AUDIT_LOG: plane.auditLog,
    SERVICE_CA_TEST_LOG_DIR: dirname(plane.auditLog),
    SERVICE_CA_TEST_DIR: plane.dir,
  };
}

let shared: Promise<TestCluster> | undefined;
let ownPlane: ControlPlane | undefined;

// Registered when a test file imports this module, so it runs once that file's tests are done.
after(async () => {
  await ownPlane?.stop();
});

/**
 * The cluster for this test file. `isolated` starts a cluster of its own even under `npm test`: for tests whose
 * subject is the whole cluster (a scan that re-issues every Service's Secret), so other files' objects and CAs
 * do not count.
 */
export function testCluster(opts: { isolated?: boolean } = {}): Promise<TestCluster> {
  shared ??= (async () => {
    const env = process.env;
    if (env.SERVICE_CA_TEST_KUBECONFIG && !opts.isolated) {
      return withClient({
        kubeconfig: env.SERVICE_CA_TEST_KUBECONFIG,
        kubectl: env.SERVICE_CA_TEST_KUBECTL!,
        server: env.SERVICE_CA_TEST_SERVER!,
        caFile: env.SERVICE_CA_TEST_CA_FILE!,
        auditLog: env.SERVICE_CA_TEST_AUDIT_LOG!,
        logDir: env.SERVICE_CA_TEST_LOG_DIR!,
        dir: env.SERVICE_CA_TEST_DIR!,
      });
    }
    const plane = await startControlPlane({
      log: (l) => console.log(`[control-plane] ${l}`),
      keepDir: process.env.SERVICE_CA_KEEP_DIRS === "1",
    });
    ownPlane = plane;
    await installInfra(plane);
    return withClient({ ...plane, logDir: dirname(plane.auditLog) });
  })();
  return shared;
}

function withClient(c: Omit<TestCluster, "kc">): TestCluster {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(c.kubeconfig);
  return { ...c, kc };
}
