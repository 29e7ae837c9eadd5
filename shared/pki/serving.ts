// Serving certificates for Services: the DNS names a Service answers to, and the certificate itself.
import { createHash } from "node:crypto";
import { x509 } from "./x509.ts";
import {
  generateKeyPair,
  privateKeyToPem,
  publicKeyOfPem,
  randomSerial,
  rsaSigning,
  subtle,
  type KeyAlgorithm,
} from "./keys.ts";
import { DAY_MS } from "./time.ts";
import * as der from "./der.ts";
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
  commonName: string;
  publicKey: CryptoKey | x509.PublicKey;
  dnsNames: string[];
  now: Date;
  /** Capped to the issuer's not-after. */
  notAfter: Date;
  /** x509.KeyUsageFlags; 0 means no KeyUsage extension (an empty one is invalid), as Kubernetes' signers do. */
  keyUsages: number;
}

/** A signed leaf as it is stored and served; parse `der` where a certificate object is wanted. */
export interface SignedLeaf {
  der: Uint8Array<ArrayBuffer>;
  pem: string;
  /** As the certificate holds it: whole seconds. */
  notAfter: Date;
}

const SHA256_WITH_RSA = der.sequence(der.oid("1.2.840.113549.1.1.11"), der.derNull());
const COMMON_NAME = der.oid("2.5.4.3");
const SUBJECT_KEY_IDENTIFIER = der.oid("2.5.29.14");
const SUBJECT_ALT_NAME = der.oid("2.5.29.17");

/**
 * The one server-auth leaf: both serving Secrets and signed CSRs are this certificate. Encoded here rather than
 * by X509CertificateGenerator (the same bytes, a unit test compares them), which cost ~6 of a leaf's ~8 CPU ms.
 */
export async function signLeaf(spec: LeafSpec): Promise<SignedLeaf> {
  const { signer } = spec;
  const issuer = issuerParts(signer.cert);
  const spki = new Uint8Array(
    spec.publicKey instanceof x509.PublicKey
      ? spec.publicKey.rawData
      : await subtle.exportKey("spki", spec.publicKey),
  );
  const keyId = keyIdentifier(spki);
  // A leaf never outlives its issuer: clients would reject the chain at the CA's expiry anyway.
  const notAfter = wholeSeconds(spec.notAfter < signer.cert.notAfter ? spec.notAfter : signer.cert.notAfter);
  const tbs = der.sequence(
    der.explicit(0, der.smallInteger(2)), // v3
    der.unsignedInteger(Buffer.from(randomSerial(), "hex")),
    SHA256_WITH_RSA,
    issuer.name,
    der.sequence(der.time(new Date(spec.now.getTime() - 1000)), der.time(notAfter)),
    der.sequence(der.set(der.sequence(COMMON_NAME, der.directoryString(spec.commonName)))),
    spki,
    der.explicit(
      3,
      der.sequence(
        ...leafConstants(spec.keyUsages),
        extension(SUBJECT_KEY_IDENTIFIER, der.octetString(keyId)),
        issuer.authorityKeyIdentifier,
        extension(
          SUBJECT_ALT_NAME,
          der.sequence(...spec.dnsNames.map((name) => der.implicit(2, der.ia5(name)))),
        ),
      ),
    ),
  );
  const signature = new Uint8Array(await subtle.sign(rsaSigning, signer.key, tbs));
  const cert = der.sequence(tbs, SHA256_WITH_RSA, der.bitString(signature));
  return { der: cert, pem: x509.PemConverter.encode(cert.buffer, "CERTIFICATE"), notAfter };
}

/** RFC 5280 §4.2.1.2, method 1: SHA-1 of the key's bits in a SubjectPublicKeyInfo. */
const keyIdentifier = (spki: der.Der) =>
  createHash("sha1")
    .update(der.bitStringContent(der.sequenceElements(spki)[1]!))
    .digest();

const wholeSeconds = (at: Date) => new Date(Math.floor(at.getTime() / 1000) * 1000);

const extension = (id: der.Der, value: der.Der) => der.sequence(id, der.octetString(value));

// What every leaf carries alike, and what every leaf of one CA carries alike, is encoded once, by @peculiar/x509.
const constantsByUsage = new Map<number, der.Der[]>();
function leafConstants(keyUsages: number): der.Der[] {
  let made = constantsByUsage.get(keyUsages);
  if (!made) {
    made = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(keyUsages ? [new x509.KeyUsagesExtension(keyUsages, true)] : []),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
    ].map((e) => new Uint8Array(e.rawData));
    constantsByUsage.set(keyUsages, made);
  }
  return made;
}

interface IssuerParts {
  name: der.Der;
  authorityKeyIdentifier: der.Der;
}
const partsByIssuer = new WeakMap<x509.X509Certificate, IssuerParts>();
function issuerParts(issuer: x509.X509Certificate): IssuerParts {
  let parts = partsByIssuer.get(issuer);
  if (!parts) {
    // The issuer's own key identifier, or (a CA without one) the one RFC 5280's first method gives its key.
    const keyId =
      issuer.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ??
      keyIdentifier(new Uint8Array(issuer.publicKey.rawData)).toString("hex");
    parts = {
      name: new Uint8Array(issuer.subjectName.toArrayBuffer()),
      authorityKeyIdentifier: new Uint8Array(new x509.AuthorityKeyIdentifierExtension(keyId).rawData),
    };
    partsByIssuer.set(issuer, parts);
  }
  return parts;
}

export async function signServingCertificate(
  opts: SignServingOptions,
): Promise<IssuedPem & { notAfter: Date }> {
  if (opts.hostnames.length === 0) throw new Error("a serving certificate needs at least one hostname");
  const hostnames = [...new Set(opts.hostnames)].sort();
  const kept = opts.existingKeyPem;
  const keys = kept ? undefined : (opts.keys ?? (await generateKeyPair(opts.keyAlgorithm ?? "rsa-2048")));
  const leaf = await signLeaf({
    signer: opts.signer,
    commonName: hostnames[0]!,
    publicKey: kept ? publicKeyOfPem(kept) : keys!.publicKey,
    dnsNames: hostnames,
    now: opts.now,
    notAfter: new Date(opts.now.getTime() + (opts.validityDays ?? SERVING_VALIDITY_DAYS) * DAY_MS),
    keyUsages: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
  });
  const keyPem = kept ? (kept.endsWith("\n") ? kept : `${kept}\n`) : await privateKeyToPem(keys!.privateKey);
  return { certPem: leaf.pem + "\n", keyPem, notAfter: leaf.notAfter };
}
