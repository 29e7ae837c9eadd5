// The signer's rules without I/O: our signerName, where a CSR stands, who asked, and which Service a name means.
import type * as k8s from "@kubernetes/client-node";

/**
 * The signerName this project signs for. A domain of its own (not kubernetes.io/…, which belongs to
 * Kubernetes' built-in signers), naming what the certificates are: serving certificates from the service CA.
 */
export const SIGNER_NAME = "service-ca.dev/serving";

export type CsrState = "signed" | "failed" | "denied" | "approved" | "pending";

const hasCondition = (csr: k8s.V1CertificateSigningRequest, type: string) =>
  (csr.status?.conditions ?? []).some((c) => c.type === type && c.status !== "False");

export function csrState(csr: k8s.V1CertificateSigningRequest): CsrState {
  if (csr.status?.certificate) return "signed";
  if (hasCondition(csr, "Failed")) return "failed";
  if (hasCondition(csr, "Denied")) return "denied";
  if (hasCondition(csr, "Approved")) return "approved";
  return "pending";
}

export function csrCondition(
  type: "Approved" | "Denied" | "Failed",
  reason: string,
  message: string,
  now: Date,
): k8s.V1CertificateSigningRequestCondition {
  return { type, status: "True", reason, message, lastUpdateTime: now, lastTransitionTime: now };
}

export interface ServiceAccountName {
  namespace: string;
  name: string;
}

/** `system:serviceaccount:<ns>:<name>` → its parts; any other user (a person, a node) → undefined. */
export function serviceAccountOf(username: string | undefined): ServiceAccountName | undefined {
  const m = /^system:serviceaccount:([a-z0-9]([-a-z0-9]*[a-z0-9])?):([^:]+)$/.exec(username ?? "");
  return m ? { namespace: m[1]!, name: m[3]! } : undefined;
}

/**
 * The Service in `namespace` that `dnsName` denotes: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc` or
 * `<svc>.<ns>.svc.cluster.local`. Any other name (another namespace, a wildcard, a Pod name) → undefined.
 */
export function serviceNamed(dnsName: string, namespace: string): string | undefined {
  const [svc, ...rest] = dnsName.split(".");
  if (!svc || !/^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/.test(svc)) return undefined;
  const suffix = rest.join(".");
  return ["", namespace, `${namespace}.svc`, `${namespace}.svc.cluster.local`].includes(suffix)
    ? svc
    : undefined;
}
