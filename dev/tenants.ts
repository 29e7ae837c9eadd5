// A tenant as a cluster hands one out: its namespace, and a ServiceAccount with the `admin` ClusterRole bound in that
// namespace only.
import * as k8s from "@kubernetes/client-node";

export async function createTenant(
  kc: k8s.KubeConfig,
  namespace: string,
  serviceAccount: string,
): Promise<void> {
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
  await kc.makeApiClient(k8s.RbacAuthorizationV1Api).createNamespacedRoleBinding({
    namespace,
    body: {
      metadata: { name: serviceAccount },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" },
      subjects: [{ kind: "ServiceAccount", name: serviceAccount, namespace }],
    },
  });
}
