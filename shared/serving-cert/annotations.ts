// The annotations users and this system put on Services and Secrets (OpenShift-compatible names).

const beta = "service.beta.openshift.io/";
const alpha = "service.alpha.openshift.io/";
/** This system's own bookkeeping, beside the OpenShift-compatible annotations. */
const own = "service-ca-functions.dev/";

export const annotations = {
  secretName: `${beta}serving-cert-secret-name`,
  secretNameAlpha: `${alpha}serving-cert-secret-name`,
  keyAlgorithm: `${beta}serving-cert-key-algorithm`,
  signedBy: `${beta}serving-cert-signed-by`,
  error: `${beta}serving-cert-generation-error`,
  errorNum: `${beta}serving-cert-generation-error-num`,
  originName: `${beta}originating-service-name`,
  originUid: `${beta}originating-service-uid`,
  originUidAlpha: `${alpha}originating-service-uid`,
  expiry: `${beta}expiry`,
  /** Opt-in for the OpenShift annotation: also `<svc>` and `<svc>.<ns>` as DNS names. */
  shortNames: `${beta}serving-cert-short-names`,
  /** Alauda's variant (cert-manager + Kyverno): its Secrets always carry the two short names. */
  secretNameAlauda: "service.alauda.io/serving-cert-secret-name",
  /** What the recorded failure is about (failures.ts causeOf): the same cause seen again is not counted again. */
  failureCause: `${own}serving-cert-failure-cause`,
  /** A Service given up on is re-checked by the scan from this time on (ISO 8601), with backoff. */
  recheckAfter: `${own}serving-cert-recheck-after`,
  recheckIntervalSeconds: `${own}serving-cert-recheck-interval-seconds`,
} as const;

/** Distinct causes of failure (not events, not scans) after which a Service is only re-checked with backoff. */
export const MAX_FAILURES = 10;

type Annotated = { metadata?: { annotations?: Record<string, string> } };

/** The Secret name a Service asks for: the OpenShift beta annotation, then alpha, then Alauda's. */
export function requestedSecretName(svc: Annotated): string | undefined {
  const a = svc.metadata?.annotations ?? {};
  return (
    a[annotations.secretName] ||
    a[annotations.secretNameAlpha] ||
    a[annotations.secretNameAlauda] ||
    undefined
  );
}

/**
 * Whether the certificate also names `<svc>` and `<svc>.<ns>`: always when the Alauda annotation is the one
 * that asked (that variant issues four names), and on request for the OpenShift ones.
 */
export function wantsShortNames(svc: Annotated): boolean {
  const a = svc.metadata?.annotations ?? {};
  const openshift = a[annotations.secretName] || a[annotations.secretNameAlpha];
  if (!openshift && a[annotations.secretNameAlauda]) return true;
  return a[annotations.shortNames] === "true";
}

export function originatingUid(secret: Annotated): string | undefined {
  const a = secret.metadata?.annotations ?? {};
  return a[annotations.originUid] ?? a[annotations.originUidAlpha];
}

export function failureCount(svc: Annotated): number {
  const n = Number.parseInt(svc.metadata?.annotations?.[annotations.errorNum] ?? "0", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}
