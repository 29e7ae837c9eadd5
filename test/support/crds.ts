// A CustomResourceDefinition served at v1 and v2 that converts between them through a webhook: what inject-crd
// gives a caBundle, and what the API server then calls.
import type * as k8s from "@kubernetes/client-node";

// client-node models name this field x_kubernetes_preserve_unknown_fields and serialize it to
// x-kubernetes-preserve-unknown-fields.
const schema = { openAPIV3Schema: { type: "object", x_kubernetes_preserve_unknown_fields: true } };

/** `<plural>.<group>`, namespaced, v1 stored and v2 served, converted by the webhook at `service`. */
export function conversionCrd(crd: {
  group: string;
  plural: string;
  singular: string;
  kind: string;
  annotations: Record<string, string>;
  service: k8s.ApiextensionsV1ServiceReference;
}): k8s.V1CustomResourceDefinition {
  return {
    metadata: { name: `${crd.plural}.${crd.group}`, annotations: crd.annotations },
    spec: {
      group: crd.group,
      scope: "Namespaced",
      names: { plural: crd.plural, singular: crd.singular, kind: crd.kind },
      versions: [
        { name: "v1", served: true, storage: true, schema },
        { name: "v2", served: true, storage: false, schema },
      ],
      conversion: {
        strategy: "Webhook",
        webhook: { conversionReviewVersions: ["v1"], clientConfig: { service: crd.service } },
      },
    },
  };
}
