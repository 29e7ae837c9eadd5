// The signer's rules without I/O: our signerName, where a CSR stands, who asked, and which names it may claim.
import type * as k8s from "@kubernetes/client-node";
import * as z from "zod";
import { reservedName } from "../serving-cert/dns-names.ts";

/**
 * The signerName this project signs for. A domain of its own (not kubernetes.io/…, which belongs to
 * Kubernetes' built-in signers), naming what the certificates are: serving certificates from the service CA.
 */

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

const SERVICE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * The Service of `namespace` whose name `dnsName` is, in the forms a requester may claim for its own namespace:
 * `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local` and the headless wildcards `*.<svc>.<ns>.svc[.cluster.local]`.
 * Short forms (`<svc>`, `<svc>.<ns>`) are not: a single label resolves in every namespace, and `<svc>.<ns>` may be
 * a public name (`web.shop`); an admin can allow them (CSR_ALLOWED_NAMES).
 */
export function serviceClaimed(dnsName: string, namespace: string): string | undefined {
  const [svc, ...rest] = dnsName.replace(/^\*\./, "").split(".");
  if (!svc || !SERVICE.test(svc)) return undefined;
  const suffix = rest.join(".");
  return [`${namespace}.svc`, `${namespace}.svc.cluster.local`].includes(suffix) ? svc : undefined;
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsLabel = z.string().regex(LABEL, "not a DNS label (a namespace name)");

/** An allowed name: a DNS name, or `*.<domain>` (then any one label in its place, and the wildcard itself). */
const namePattern = z
  .string()
  .max(253)
  .refine(
    (p) =>
      p
        .replace(/^\*\./, "")
        .split(".")
        .every((l) => LABEL.test(l)),
    "not a lowercase DNS name, or *.<domain>",
  )
  .refine(
    (p) => !p.startsWith("*.") || p.split(".").length >= 3,
    "a wildcard needs at least two labels below it",
  )
  .refine((p) => !reservedName(p), "localhost, IP addresses and kubernetes.default* are never certified");

/**
 * One rule of CSR_ALLOWED_NAMES: who (any of `users`, `groups`, or the ServiceAccounts of
 * `serviceAccountNamespaces`) may claim what besides their own namespace's Services: the Service names of
 * `namespaces`, and `names`.
 */
export const csrNameRule = z
  .strictObject({
    users: z.array(z.string().min(1)).default([]),
    groups: z.array(z.string().min(1)).default([]),
    serviceAccountNamespaces: z.array(dnsLabel).default([]),
    namespaces: z.array(dnsLabel).default([]),
    names: z.array(namePattern).default([]),
  })
  .refine(
    (r) => r.users.length + r.groups.length + r.serviceAccountNamespaces.length > 0,
    "a rule names at least one of users, groups, serviceAccountNamespaces",
  )
  .refine((r) => r.namespaces.length + r.names.length > 0, "a rule allows at least one of namespaces, names");

export type CsrNameRule = z.infer<typeof csrNameRule>;

/** CSR_ALLOWED_NAMES: a JSON array of rules, validated when the function starts. */
export const csrAllowedNames = z
  .string()
  .default("[]")
  .transform((text, ctx): unknown => {
    try {
      return JSON.parse(text);
    } catch (err) {
      ctx.addIssue({
        code: "custom",
        message: `not JSON: ${err instanceof Error ? err.message : String(err)}`,
      });
      return z.NEVER;
    }
  })
  .pipe(z.array(csrNameRule));

export interface Requester {
  username?: string;
  groups?: string[];
}

const rulesFor = (requester: Requester, rules: readonly CsrNameRule[]) => {
  const sa = serviceAccountOf(requester.username);
  return rules.filter(
    (r) =>
      (requester.username !== undefined && r.users.includes(requester.username)) ||
      (requester.groups ?? []).some((g) => r.groups.includes(g)) ||
      (sa !== undefined && r.serviceAccountNamespaces.includes(sa.namespace)),
  );
};

const matches = (name: string, pattern: string) =>
  name === pattern ||
  (pattern.startsWith("*.") &&
    name.endsWith(pattern.slice(1)) &&
    LABEL.test(name.slice(0, name.length - pattern.length + 1)));

/**
 * Why `name` may never be certified, for anyone, whatever the configuration: reserved names, a wildcard over a
 * whole domain (`*.com`), and in the cluster's own domain any wildcard but `*.<svc>.<ns>.svc[.cluster.local]`.
 */
export function neverCertified(name: string): string | undefined {
  const reserved = reservedName(name);
  if (reserved) return reserved;
  if (!name.startsWith("*.")) return undefined;
  const labels = name.split(".").slice(1);
  if (labels.length < 2) return "a wildcard over a whole top-level domain is never certified";
  const inCluster = /(^|\.)(svc|svc\.cluster\.local|cluster\.local)$/.test(labels.join("."));
  const serviceWildcard =
    (labels.length === 3 && labels[2] === "svc") ||
    (labels.length === 5 && labels.slice(2).join(".") === "svc.cluster.local");
  if (inCluster && !serviceWildcard)
    return "the only wildcards in the cluster's domain are a headless Service's *.<svc>.<ns>.svc[.cluster.local]";
  return undefined;
}

export interface NameRefusal {
  name: string;
  why: string;
}

/**
 * The names of a request that its requester may not claim (none: it may be signed). A ServiceAccount may claim the
 * Service names of its own namespace; anyone what CSR_ALLOWED_NAMES grants it; nobody what neverCertified says.
 */
export function refusedNames(
  dnsNames: readonly string[],
  requester: Requester,
  rules: readonly CsrNameRule[],
): NameRefusal[] {
  const sa = serviceAccountOf(requester.username);
  const mine = rulesFor(requester, rules);
  const namespaces = [...new Set([...(sa ? [sa.namespace] : []), ...mine.flatMap((r) => r.namespaces)])];
  const patterns = mine.flatMap((r) => r.names);
  const refused: NameRefusal[] = [];
  for (const name of dnsNames) {
    const never = neverCertified(name);
    if (never) refused.push({ name, why: never });
    else if (namespaces.some((ns) => serviceClaimed(name, ns))) continue;
    else if (patterns.some((p) => matches(name, p))) continue;
    else
      refused.push({
        name,
        why:
          namespaces.length > 0
            ? `not a Service name of ${namespaces.join(", ")} (<svc>.<ns>.svc, <svc>.<ns>.svc.cluster.local, *.<svc>.<ns>.svc[.cluster.local]) nor allowed by CSR_ALLOWED_NAMES`
            : `${requester.username ?? "the requester"} is not a ServiceAccount, and CSR_ALLOWED_NAMES allows it no names`,
      });
  }
  return refused;
}
