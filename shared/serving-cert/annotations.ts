// Reading the annotations users and this system put on Services and Secrets (the names are in names.ts).
import { annotations } from "../names.ts";

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
