// Running the built kubectl against a test cluster, as a user would.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { TestCluster } from "./cluster.ts";

const run = promisify(execFile);

export async function kubectl(
  cluster: Pick<TestCluster, "kubectl" | "kubeconfig">,
  ...args: string[]
): Promise<string> {
  const { stdout } = await run(cluster.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], {
    maxBuffer: 64 << 20,
  });
  return stdout;
}

/**
 * Lets ServiceAccounts (`namespace:name`) create and read CertificateSigningRequests, which are cluster-scoped:
 * a ClusterRole and a ClusterRoleBinding, both named `role`, made by `admin`.
 */
export async function allowCsrRequests(
  admin: Pick<TestCluster, "kubectl" | "kubeconfig">,
  role: string,
  serviceAccounts: string[],
): Promise<void> {
  await kubectl(
    admin,
    "create",
    "clusterrole",
    role,
    "--verb=create,get",
    "--resource=certificatesigningrequests.certificates.k8s.io",
  );
  await kubectl(
    admin,
    "create",
    "clusterrolebinding",
    role,
    `--clusterrole=${role}`,
    ...serviceAccounts.map((sa) => `--serviceaccount=${sa}`),
  );
}
