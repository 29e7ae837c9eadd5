// The opt-in annotation for bundle injection, and where a ConfigMap receives the bundle.

export const INJECT_BETA = "service.beta.openshift.io/inject-cabundle";
export const INJECT_ALPHA = "service.alpha.openshift.io/inject-cabundle";
export const BUNDLE_KEY_IN_CONFIGMAP = "service-ca.crt";

/** `"true"`, compared case-insensitively, as OpenShift does. */
export function wantsInjection(
  annotations: Record<string, string> | undefined,
  readsAlpha: boolean,
): boolean {
  const is = (v: string | undefined) => v?.toLowerCase() === "true";
  return is(annotations?.[INJECT_BETA]) || (readsAlpha && is(annotations?.[INJECT_ALPHA]));
}
