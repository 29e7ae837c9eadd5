// Certificate signing requests (PKCS#10): parse, judge and sign a serving certificate for one; nothing here
// knows who asked or whether they may.
import { x509 } from "./x509.ts";
import { signLeaf, type SignedLeaf, type Signer } from "./serving.ts";

/** The shortest lifetime Kubernetes lets a CSR ask for (spec.expirationSeconds). */
export const CSR_MIN_SECONDS = 600;

/** Usages (certificates.k8s.io names) a serving certificate may carry; "server auth" is required. */
export const SERVING_USAGES = ["server auth", "digital signature", "key encipherment"] as const;
export type ServingUsage = (typeof SERVING_USAGES)[number];

/** Why a request cannot be signed: the CamelCase reason of a Failed or Denied condition. */
export type CsrProblemReason =
  "InvalidRequest" | "SignatureInvalid" | "UnsupportedKey" | "UnsupportedUsages" | "UnsupportedNames";

export interface ServingRequest {
  csr: x509.Pkcs10CertificateRequest;
  /** Sorted, without duplicates. */
  dnsNames: string[];
  /** The subject CN of the certificate to issue: the request's CN, or the first DNS name. */
  commonName: string;
  usages: ServingUsage[];
  /** e.g. "RSA-2048", "ECDSA P-256" */
  key: string;
}

export type CsrVerdict =
  { ok: true; request: ServingRequest } | { ok: false; reason: CsrProblemReason; message: string };

const problem = (reason: CsrProblemReason, message: string): CsrVerdict => ({ ok: false, reason, message });

const dnsName = /^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
const ecCurves = ["P-256", "P-384", "P-521"];

/**
 * Whether `pem` (a CSR's spec.request) is one PKCS#10 request whose signature verifies with its own key (proof
 * that the requester holds the private key), with a supported key, only DNS names, and `usages` fit for a
 * serving certificate. Extensions the request asks for besides subjectAltName are ignored: the issued
 * certificate's extensions come from `usages` alone.
 */
export async function judgeServingRequest(pem: string, usages: readonly string[]): Promise<CsrVerdict> {
  const blocks = pem.match(/-----BEGIN CERTIFICATE REQUEST-----[\s\S]+?-----END CERTIFICATE REQUEST-----/g);
  if (blocks?.length !== 1)
    return problem(
      "InvalidRequest",
      `spec.request must hold exactly one PEM block of type CERTIFICATE REQUEST, found ${blocks?.length ?? 0}`,
    );
  let csr: x509.Pkcs10CertificateRequest;
  let sans: x509.SubjectAlternativeNameExtension[];
  let algorithm: Algorithm;
  try {
    csr = new x509.Pkcs10CertificateRequest(blocks[0]!);
    sans = csr.extensions.filter((e) => e instanceof x509.SubjectAlternativeNameExtension);
    algorithm = csr.publicKey.algorithm;
  } catch (err) {
    return problem("InvalidRequest", `not a valid PKCS#10 request: ${messageOf(err)}`);
  }
  const key = keyDescription(algorithm);
  if (!key.supported)
    return problem(
      "UnsupportedKey",
      `${key.name} keys are not supported: use RSA (2048 to 8192 bits) or ECDSA (${ecCurves.join(", ")})`,
    );
  if (!(await csr.verify().catch(() => false)))
    return problem("SignatureInvalid", "the request's signature does not verify with its public key");

  if (sans.length > 1) return problem("InvalidRequest", "the request has more than one subjectAltName");
  const other = sans[0]?.names.items.filter((n) => n.type !== "dns") ?? [];
  if (other.length > 0)
    return problem(
      "UnsupportedNames",
      `only DNS names can be certified, not ${other.map((n) => `${n.type}:${n.value}`).join(", ")}`,
    );
  const names = sans[0]?.names.items.map((n) => n.value) ?? [];

  const bad = usages.filter((u) => !(SERVING_USAGES as readonly string[]).includes(u));
  if (bad.length > 0 || !usages.includes("server auth"))
    return problem(
      "UnsupportedUsages",
      `usages must include "server auth" and may add only ${SERVING_USAGES.slice(1)
        .map((u) => `"${u}"`)
        .join(" and ")}${bad.length ? `; not allowed: ${bad.map((u) => `"${u}"`).join(", ")}` : ""}`,
    );

  const cn = csr.subjectName.getField("CN");
  if (cn.length > 1) return problem("UnsupportedNames", "the subject has more than one CN");
  const dnsNames = [...new Set(names)].sort();
  if (dnsNames.length === 0)
    return problem("UnsupportedNames", "the request names no DNS name (subjectAltName)");
  const invalid = dnsNames.filter((n) => n.length > 253 || !dnsName.test(n));
  if (invalid.length > 0)
    return problem("UnsupportedNames", `not valid lowercase DNS names: ${invalid.join(", ")}`);
  if (cn[0] !== undefined && !dnsNames.includes(cn[0]))
    return problem("UnsupportedNames", `the subject CN ${cn[0]} is not one of the request's DNS names`);

  return {
    ok: true,
    request: {
      csr,
      dnsNames,
      commonName: cn[0] ?? dnsNames[0]!,
      usages: usages as ServingUsage[],
      key: key.name,
    },
  };
}

function keyDescription(alg: Algorithm): { name: string; supported: boolean } {
  if (alg.name === "RSASSA-PKCS1-v1_5") {
    const bits = (alg as RsaHashedKeyAlgorithm).modulusLength;
    return { name: `RSA-${bits}`, supported: bits >= 2048 && bits <= 8192 };
  }
  if (alg.name === "ECDSA") {
    const curve = (alg as EcKeyAlgorithm).namedCurve;
    return { name: `ECDSA ${curve}`, supported: ecCurves.includes(curve) };
  }
  return { name: alg.name, supported: false };
}

/**
 * The lifetime to grant: what the request asks for (spec.expirationSeconds) or else `maxSeconds`, never above
 * `maxSeconds` and never below the Kubernetes minimum.
 */
export const csrLifetimeSeconds = (requested: number | undefined, maxSeconds: number) =>
  Math.max(CSR_MIN_SECONDS, Math.min(requested ?? maxSeconds, maxSeconds));

export interface SignRequestOptions {
  signer: Signer;
  request: ServingRequest;
  now: Date;
  lifetimeSeconds: number;
}

/** Issues the serving certificate `request` asks for, with the requester's own public key. */
export async function signServingRequest(opts: SignRequestOptions): Promise<SignedLeaf> {
  const { request } = opts;
  return signLeaf({
    signer: opts.signer,
    commonName: request.commonName,
    publicKey: request.csr.publicKey,
    dnsNames: request.dnsNames,
    now: opts.now,
    notAfter: new Date(opts.now.getTime() + opts.lifetimeSeconds * 1000),
    keyUsages:
      (request.usages.includes("digital signature") ? x509.KeyUsageFlags.digitalSignature : 0) |
      (request.usages.includes("key encipherment") ? x509.KeyUsageFlags.keyEncipherment : 0),
  });
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
