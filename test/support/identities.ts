// Functions in tests run as their own ServiceAccounts (from infra/), never as the admin: a missing right fails.
import * as k8s from "@kubernetes/client-node";
import type { TestCluster } from "./cluster.ts";
import { serviceAccountKubeconfig, SYSTEM_NAMESPACE } from "../../dev/local-system/local-system.ts";

/**
 * A kubeconfig for function `fn`'s ServiceAccount. With a CA namespace other than the default, the function's
 * Role for CA state is granted there too, as a deployer setting CA_NAMESPACE would do.
 */
export async function functionKubeconfig(
  cluster: TestCluster,
  fn: string,
  caNamespace = SYSTEM_NAMESPACE,
): Promise<string> {
  if (caNamespace !== SYSTEM_NAMESPACE) await grantCaNamespace(cluster.kc, fn, caNamespace);
  return serviceAccountKubeconfig(cluster, fn);
}

async function grantCaNamespace(kc: k8s.KubeConfig, fn: string, namespace: string): Promise<void> {
  const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const role = await rbac.readNamespacedRole({ namespace: SYSTEM_NAMESPACE, name: fn });
  const ignoreExists = (err: unknown) => {
    if (!(err instanceof k8s.ApiException && err.code === 409)) throw err;
  };
  await rbac
    .createNamespacedRole({ namespace, body: { metadata: { name: fn }, rules: role.rules } })
    .catch(ignoreExists);
  await rbac
    .createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: fn },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: fn },
        subjects: [{ kind: "ServiceAccount", name: fn, namespace: SYSTEM_NAMESPACE }],
      },
    })
    .catch(ignoreExists);
}
