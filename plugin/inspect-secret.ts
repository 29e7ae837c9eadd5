// `inspect secret <ns>/<name>`: a serving Secret decoded, as `cmctl inspect secret` does.
import { dataKeys } from "../shared/names.ts";
import * as k8s from "@kubernetes/client-node";
import {
  leafIssuedBy,
  leafKeyMatches,
  parseCertificates,
  readLeaf,
  type Leaf,
  type x509,
} from "../shared/pki/index.ts";
import { call, EXIT, PluginError } from "./access.ts";
import { publishedBundle } from "./ca.ts";

export interface SecretReport {
  secret: string;
  subject: string;
  issuer: string;
  dnsNames: string[];
  serial: string;
  notBefore: string;
  notAfter: string;
  keyType: string;
  keyMatches: boolean;
  chain: string[];
  verifiesAgainstPublishedBundle: boolean;
  /** the bundle certificate it chains to */
  verifiedBy?: string;
  valid: boolean;
  problems: string[];
}

const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

function keyType(leaf: Leaf): string {
  const key = leaf.cert.publicKey;
  const d = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === "rsa") return `RSA ${d.modulusLength ?? "?"} bit`;
  if (key.asymmetricKeyType === "ec") return `ECDSA ${d.namedCurve ?? "?"}`;
  return key.asymmetricKeyType ?? "unknown";
}

/** The bundle certificate `leaf` chains to: directly, or through one served intermediate (a cross-signed CA). */
export function chainsTo(leaf: Leaf, chain: x509.X509Certificate[], bundle: x509.X509Certificate[]) {
  const direct = bundle.find((ca) => leafIssuedBy(leaf, ca));
  if (direct) return direct;
  for (const mid of chain) {
    if (!leafIssuedBy(leaf, mid)) continue;
    const midLeaf = readLeaf(mid.toString("pem"));
    const root = midLeaf && bundle.find((ca) => leafIssuedBy(midLeaf, ca));
    if (root) return root;
  }
  return undefined;
}

export function describeSecret(
  name: string,
  data: Record<string, string>,
  bundle: x509.X509Certificate[],
  now: Date,
): SecretReport {
  const crt = unb64(data[dataKeys.tlsCert]);
  const leaf = readLeaf(crt);
  if (!leaf) throw new PluginError(`Secret ${name} holds no parsable certificate in tls.crt`, EXIT.finding);
  const chain = parseCertificates(crt).slice(1);
  const root = chainsTo(leaf, chain, bundle);
  const keyMatches = leafKeyMatches(unb64(data[dataKeys.tlsKey]), leaf);
  const problems: string[] = [];
  if (leaf.notAfter <= now) problems.push(`expired at ${leaf.notAfter.toISOString()}`);
  if (leaf.notBefore > now) problems.push(`not valid before ${leaf.notBefore.toISOString()}`);
  if (!root) problems.push("does not verify against the published CA bundle");
  if (!keyMatches) problems.push("tls.key is not the key of tls.crt");
  return {
    secret: name,
    subject: leaf.cert.subject.replace(/\n/g, ", "),
    issuer: leaf.cert.issuer.replace(/\n/g, ", "),
    dnsNames: leaf.dnsNames,
    serial: leaf.cert.serialNumber,
    notBefore: leaf.notBefore.toISOString(),
    notAfter: leaf.notAfter.toISOString(),
    keyType: keyType(leaf),
    keyMatches,
    chain: chain.map((c) => `${c.subject} (issued by ${c.issuer})`),
    verifiesAgainstPublishedBundle: root !== undefined,
    verifiedBy: root?.subject,
    valid: problems.length === 0,
    problems,
  };
}

export async function inspectSecret(kc: k8s.KubeConfig, namespace: string, name: string, now: Date) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const secret = await call({ verb: "get", resource: "secrets", namespace, name }, () =>
    core.readNamespacedSecret({ namespace, name }),
  );
  if (!secret) throw new PluginError(`Secret ${namespace}/${name} not found`, EXIT.error);
  return describeSecret(`${namespace}/${name}`, secret.data ?? {}, await publishedBundle(kc), now);
}

export function printSecret(r: SecretReport): string {
  return [
    `Secret:       ${r.secret}`,
    `Subject:      ${r.subject}`,
    `DNS names:    ${r.dnsNames.join(", ")}`,
    `Issuer:       ${r.issuer}`,
    `Serial:       ${r.serial}`,
    `Not before:   ${r.notBefore}`,
    `Not after:    ${r.notAfter}`,
    `Key:          ${r.keyType}${r.keyMatches ? "" : " (tls.key does not match)"}`,
    `Chain:        ${r.chain.length === 0 ? "none" : r.chain.join("; ")}`,
    `Verifies:     ${r.verifiesAgainstPublishedBundle ? `yes, against the published bundle (${r.verifiedBy})` : "NO, not against the published bundle"}`,
    `Status:       ${r.valid ? "valid" : r.problems.join("; ")}`,
  ].join("\n");
}
