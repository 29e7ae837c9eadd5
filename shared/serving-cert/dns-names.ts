// What a Kubernetes object name or a certificate's DNS name may look like, and the names never certified.
import { capText } from "../runtime/logger.ts";

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** A DNS-1123 label: a namespace name, one part of a DNS name. */
export const isDnsLabel = (s: string): boolean => LABEL.test(s);

/** The X.509 upper bound of a subject CN (RFC 5280, ub-common-name). */
export const MAX_COMMON_NAME = 64;

/**
 * Why `name` is not a DNS-1123 subdomain (what the API server accepts as a Secret's name), or undefined when it is.
 * Checked before any request path is built from it: `a/b` would otherwise name another resource's path.
 */
export function secretNameProblem(name: string): string | undefined {
  const quoted = JSON.stringify(capText(name, 64));
  const rule =
    "a Secret name is a DNS-1123 subdomain: at most 253 characters, lowercase letters, digits, '-' and '.', beginning and ending with a letter or digit";
  if (name.length > 253) return `${quoted} is ${name.length} characters long; ${rule}`;
  if (/[A-Z]/.test(name)) return `${quoted} has uppercase letters; ${rule}`;
  const bad = [...new Set(name.replace(/[-a-z0-9.]/g, ""))];
  if (bad.length > 0)
    return `${quoted} contains ${bad
      .slice(0, 5)
      .map((c) => JSON.stringify(c))
      .join(", ")}; ${rule}`;
  // The API server's own rule (IsDNS1123Subdomain): no length limit per part, unlike a DNS label.
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name))
    return `${quoted} is not well formed; ${rule}`;
  return undefined;
}

/**
 * Names no certificate of this system ever carries, whatever a request or a configuration says: `localhost` (and
 * anything under it, RFC 6761), names that look like an IPv4 address (a client may match them as one), and
 * Kubernetes' own API server Service, `kubernetes.default*`.
 */
export function reservedName(name: string): string | undefined {
  const bare = name.replace(/^\*\./, "");
  if (bare === "localhost" || bare.endsWith(".localhost")) return "localhost is never certified";
  if (/^[0-9.]+$/.test(bare)) return "an IP address is never certified as a DNS name";
  if (name === "kubernetes.default" || name.startsWith("kubernetes.default."))
    return "the API server's own names (kubernetes.default*) are never certified";
  return undefined;
}
