// Serving certificates for Services: the DNS names a Service answers to, and the certificate itself.
import { x509 } from "./x509.ts";
import {
  generateKeyPair,
  privateKeyToPem,
  publicKeyOfPem,
  randomSerial,
  rsaSigning,
  type KeyAlgorithm,
} from "./keys.ts";
import { DAY_MS } from "./time.ts";
import type { IssuedPem } from "./authority.ts";

export const SERVING_VALIDITY_DAYS = 730;

export interface Signer {
  cert: x509.X509Certificate;
  key: CryptoKey;
}

/** `<svc>.<ns>.svc` and its cluster.local form; headless Services also get the `*.` wildcards of both. */
export function servingHostnames(service: string, namespace: string, headless: boolean): string[] {
  const base = [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
  return (headless ? [...base, ...base.map((h) => `*.${h}`)] : base).sort();
}

/** The names the Alauda variant issues: the short forms as well. */
export function shortHostnames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`];
}

export interface SignServingOptions {
  signer: Signer;
  hostnames: string[];
  now: Date;
  validityDays?: number;
  keyAlgorithm?: KeyAlgorithm;
  /** A pre-generated key pair, so key generation can leave the latency path. */
  keys?: CryptoKeyPair;
  /**
   * The PEM private key the certificate keeps instead of a new one (re-signed under another CA): its public half
   * goes into the certificate and the PEM comes back as it is. Wins over `keys`.
   */
  existingKeyPem?: string;
}

export interface LeafSpec {
  signer: Signer;
  subject: string | x509.Name;
  publicKey: CryptoKey | x509.PublicKey;
  dnsNames: string[];
  now: Date;
  /** Capped to the issuer's not-after. */
  notAfter: Date;
  /** x509.KeyUsageFlags; 0 means no KeyUsage extension (an empty one is invalid), as Kubernetes' signers do. */
  keyUsages: number;
}

/** The one server-auth leaf: both serving Secrets and signed CSRs are this certificate. */
export async function signLeaf(spec: LeafSpec): Promise<x509.X509Certificate> {
  const { signer } = spec;
  // One export of the key serves both the certificate and its key identifier.
  const publicKey =
    spec.publicKey instanceof x509.PublicKey ? spec.publicKey : await x509.PublicKey.create(spec.publicKey);
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: spec.subject,
    issuer: signer.cert.subjectName,
    notBefore: new Date(spec.now.getTime() - 1000),
    // A leaf never outlives its issuer: clients would reject the chain at the CA's expiry anyway.
    notAfter: spec.notAfter < signer.cert.notAfter ? spec.notAfter : signer.cert.notAfter,
    publicKey,
    signingKey: signer.key,
    signingAlgorithm: rsaSigning,
    extensions: [
      ...leafConstants(spec.keyUsages),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await authorityKeyIdentifier(signer.cert),
      new x509.SubjectAlternativeNameExtension(
        spec.dnsNames.map((value) => ({ type: "dns" as const, value })),
      ),
    ],
  });
}

// What every leaf carries alike, and what every leaf of one CA carries alike, is encoded once: each extension
// object costs an ASN.1 round trip to build.
const constantsByUsage = new Map<number, x509.Extension[]>();
function leafConstants(keyUsages: number): x509.Extension[] {
  let made = constantsByUsage.get(keyUsages);
  if (!made) {
    made = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(keyUsages ? [new x509.KeyUsagesExtension(keyUsages, true)] : []),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ];
    constantsByUsage.set(keyUsages, made);
  }
  return made;
}

const akiByIssuer = new WeakMap<x509.X509Certificate, Promise<x509.AuthorityKeyIdentifierExtension>>();
function authorityKeyIdentifier(issuer: x509.X509Certificate): Promise<x509.AuthorityKeyIdentifierExtension> {
  let aki = akiByIssuer.get(issuer);
  if (!aki) {
    aki = x509.AuthorityKeyIdentifierExtension.create(issuer);
    akiByIssuer.set(issuer, aki);
  }
  return aki;
}

export async function signServingCertificate(
  opts: SignServingOptions,
): Promise<IssuedPem & { cert: x509.X509Certificate }> {
  if (opts.hostnames.length === 0) throw new Error("a serving certificate needs at least one hostname");
  const hostnames = [...new Set(opts.hostnames)].sort();
  const kept = opts.existingKeyPem;
  const keys = kept ? undefined : (opts.keys ?? (await generateKeyPair(opts.keyAlgorithm ?? "rsa-2048")));
  const cert = await signLeaf({
    signer: opts.signer,
    subject: `CN=${hostnames[0]}`,
    publicKey: kept ? publicKeyOfPem(kept) : keys!.publicKey,
    dnsNames: hostnames,
    now: opts.now,
    notAfter: new Date(opts.now.getTime() + (opts.validityDays ?? SERVING_VALIDITY_DAYS) * DAY_MS),
    keyUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  });
  const keyPem = kept ? (kept.endsWith("\n") ? kept : `${kept}\n`) : await privateKeyToPem(keys!.privateKey);
  return { cert, certPem: cert.toString("pem") + "\n", keyPem };
}
