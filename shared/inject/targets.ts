// One small adapter per kind: where the bundle lives in the object and the patch that sets only that.
import { dataKeys } from "../names.ts";

/* eslint-disable @typescript-eslint/no-explicit-any -- objects are read generically; each adapter knows its shape */
export type AnyObject = Record<string, any>;

export type Patch =
  | { strategy: "merge"; body: AnyObject }
  | { strategy: "strategic"; body: AnyObject }
  | { strategy: "apply"; body: AnyObject };

export interface InjectionTarget {
  apiVersion: string;
  kind: string;
  namespaced: boolean;
  /** ConfigMaps and APIServices also honour the `service.alpha.openshift.io/` annotation. */
  readsAlphaAnnotation: boolean;
  /** Why this object cannot take a bundle (e.g. a CRD without webhook conversion), if so. */
  notApplicable?(obj: AnyObject): string | undefined;
  /** The bundles the object holds now (one per field we manage), as PEM. */
  currentBundles(obj: AnyObject): Array<string | undefined>;
  /** The patch that sets every managed field to `bundlePem` and touches nothing else. */
  patch(obj: AnyObject, bundlePem: string): Patch;
}

const fromB64 = (v: unknown) =>
  typeof v === "string" ? Buffer.from(v, "base64").toString("utf8") : undefined;
const toB64 = (pem: string) => Buffer.from(pem, "utf8").toString("base64");

export const configMapTarget: InjectionTarget = {
  apiVersion: "v1",
  kind: "ConfigMap",
  namespaced: true,
  readsAlphaAnnotation: true,
  currentBundles: (cm) => [cm.data?.[dataKeys.injectedBundle]],
  // Server-side apply owning just our key: other keys and their managers are left alone.
  patch: (_cm, pem) => ({ strategy: "apply", body: { data: { [dataKeys.injectedBundle]: pem } } }),
};

export const apiServiceTarget: InjectionTarget = {
  apiVersion: "apiregistration.k8s.io/v1",
  kind: "APIService",
  namespaced: false,
  readsAlphaAnnotation: true,
  currentBundles: (o) => [fromB64(o.spec?.caBundle)],
  patch: (_o, pem) => ({ strategy: "merge", body: { spec: { caBundle: toB64(pem) } } }),
};

export const crdTarget: InjectionTarget = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  namespaced: false,
  readsAlphaAnnotation: false,
  notApplicable: (crd) =>
    crd.spec?.conversion?.strategy === "Webhook"
      ? undefined
      : `spec.conversion.strategy is ${crd.spec?.conversion?.strategy ?? "None"}, not Webhook: there is no caBundle to inject`,
  currentBundles: (crd) => [fromB64(crd.spec?.conversion?.webhook?.clientConfig?.caBundle)],
  patch: (_crd, pem) => ({
    strategy: "merge",
    body: { spec: { conversion: { webhook: { clientConfig: { caBundle: toB64(pem) } } } } },
  }),
};

function webhookTarget(
  kind: "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
): InjectionTarget {
  return {
    apiVersion: "admissionregistration.k8s.io/v1",
    kind,
    namespaced: false,
    readsAlphaAnnotation: false,
    notApplicable: (o) => ((o.webhooks ?? []).length === 0 ? "it has no webhooks" : undefined),
    currentBundles: (o) => (o.webhooks ?? []).map((w: AnyObject) => fromB64(w.clientConfig?.caBundle)),
    // webhooks merge by name, so one strategic-merge patch sets every caBundle and nothing else.
    patch: (o, pem) => ({
      strategy: "strategic",
      body: {
        webhooks: (o.webhooks ?? []).map((w: AnyObject) => ({
          name: w.name,
          clientConfig: { caBundle: toB64(pem) },
        })),
      },
    }),
  };
}

export const mutatingWebhookTarget = webhookTarget("MutatingWebhookConfiguration");
export const validatingWebhookTarget = webhookTarget("ValidatingWebhookConfiguration");

/** Every kind this system injects: what expiry-scan re-injects, and what the inject-* functions pick from. */
export const injectionTargets: InjectionTarget[] = [
  configMapTarget,
  apiServiceTarget,
  crdTarget,
  mutatingWebhookTarget,
  validatingWebhookTarget,
];
