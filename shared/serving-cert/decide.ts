// Whether a Service's Secret needs a new certificate, and why: pure, so every rule is unit-tested.
import type { x509 } from "../pki/x509.ts";
import { leafIssuedBy, leafKeyMatches, readLeaf, sameNames, type KeyAlgorithm } from "../pki/index.ts";
import { annotations, dataKeys } from "../names.ts";

export const TLS_KEYS = [dataKeys.tlsCert, dataKeys.tlsKey] as const;

export interface SecretView {
  annotations: Record<string, string>;
  /** decoded data */
  data: Record<string, string>;
}

export interface Wanted {
  hostnames: string[];
  keyAlgorithm: KeyAlgorithm;
  currentCa: x509.X509Certificate;
  now: Date;
  /** Re-issue when less than this fraction of the certificate's lifetime remains. */
  refreshFraction: number;
}

export const NOT_CURRENT_CA = "issued by a CA that is not the current one";

export async function reissueReason(
  secret: SecretView | undefined,
  want: Wanted,
): Promise<string | undefined> {
  if (!secret) return "secret missing";
  const crt = secret.data[dataKeys.tlsCert];
  const key = secret.data[dataKeys.tlsKey];
  if (!crt || !key) return "tls.crt or tls.key missing";
  const leaf = readLeaf(crt);
  if (!leaf) return "tls.crt does not parse";
  if (!leafKeyMatches(key, leaf)) return "tls.key does not match tls.crt";
  if (!leafIssuedBy(leaf, want.currentCa)) return NOT_CURRENT_CA;
  if (!sameNames(leaf.dnsNames, want.hostnames)) return "hostnames changed";
  if (leaf.keyAlgorithm !== want.keyAlgorithm) return `key algorithm is not ${want.keyAlgorithm}`;
  if (!secret.annotations[annotations.expiry]) return "expiry annotation missing";
  const lifetime = leaf.notAfter.getTime() - leaf.notBefore.getTime();
  const remaining = leaf.notAfter.getTime() - want.now.getTime();
  if (remaining < lifetime * want.refreshFraction) return "close to expiry";
  return undefined;
}

/** Data keys in our Secret that are not ours; they are stripped without re-issuing. */
export const extraKeys = (secret: SecretView) =>
  Object.keys(secret.data).filter((k) => !(TLS_KEYS as readonly string[]).includes(k));

/**
 * Whether a certificate re-issued because its CA was rotated may keep its key: the key matches, is of the wanted
 * algorithm, and the CA that signed it is still trusted (a routine rotation). A CA trusted no more (replaced after a
 * compromise, or expired) gets a fresh key as well. Keeping it spares the fan-out a key generation per Secret.
 */
export function keyWorthKeeping(
  secret: SecretView,
  want: { keyAlgorithm: KeyAlgorithm; trusted: x509.X509Certificate[] },
): boolean {
  const crt = secret.data[dataKeys.tlsCert];
  const key = secret.data[dataKeys.tlsKey];
  const leaf = readLeaf(crt);
  if (!leaf || !key || leaf.keyAlgorithm !== want.keyAlgorithm || !leafKeyMatches(key, leaf)) return false;
  return want.trusted.some((ca) => leafIssuedBy(leaf, ca));
}
