// A ServiceAccount with exactly the given rights in one namespace, and a token for it: how a test or a
// benchmark acts as a user of the system (a CA admin, a tenant) rather than as cluster-admin.
import * as k8s from "@kubernetes/client-node";

export async function tokenWithRules(
  kc: k8s.KubeConfig,
  namespace: string,
  sa: string,
  rules: k8s.V1PolicyRule[] | undefined,
): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: sa } } });
  if (rules) {
    const rbac = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name: sa }, rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: sa },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sa },
        subjects: [{ kind: "ServiceAccount", name: sa, namespace }],
      },
    });
  }
  const t = await core.createNamespacedServiceAccountToken({
    namespace,
    name: sa,
    body: { spec: { audiences: [] } },
  });
  return t.status!.token;
}

/** The right `rotate-ca` asks for: update on the CA Secret. */
export const rotatorRules = (secretName = "signing-key"): k8s.V1PolicyRule[] => [
  { apiGroups: [""], resources: ["secrets"], resourceNames: [secretName], verbs: ["update"] },
];
