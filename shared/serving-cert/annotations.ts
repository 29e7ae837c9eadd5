// The annotations users and this system put on Services and Secrets (OpenShift-compatible names).

const beta = "service.beta.openshift.io/";
const alpha = "service.alpha.openshift.io/";

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
} as const;

export const MAX_FAILURES = 10;

type Annotated = { metadata?: { annotations?: Record<string, string> } };

/** The Secret name a Service asks for (the beta annotation wins over the alpha one). */
export function requestedSecretName(svc: Annotated): string | undefined {
  const a = svc.metadata?.annotations ?? {};
  return a[annotations.secretName] || a[annotations.secretNameAlpha] || undefined;
}

export function originatingUid(secret: Annotated): string | undefined {
  const a = secret.metadata?.annotations ?? {};
  return a[annotations.originUid] ?? a[annotations.originUidAlpha];
}

export function failureCount(svc: Annotated): number {
  const n = Number.parseInt(svc.metadata?.annotations?.[annotations.errorNum] ?? "0", 10);
  return Number.isFinite(n) && n > 0 ? n : 0;
}
