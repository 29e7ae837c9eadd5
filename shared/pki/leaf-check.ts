// The checks a scan makes on every served certificate, on node:crypto's native X.509 (a tenth of the cost of
// parsing and verifying in JavaScript), so judging 10,000 Secrets takes seconds, not tens of seconds.
import {
  X509Certificate as NativeCertificate,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
} from "node:crypto";
import type { x509 } from "./x509.ts";
import type { KeyAlgorithm } from "./keys.ts";

export interface Leaf {
  cert: NativeCertificate;
  notBefore: Date;
  notAfter: Date;
  dnsNames: string[];
  keyAlgorithm: KeyAlgorithm | "other";
}

/** The first certificate of a PEM chain, or undefined when there is none or it does not parse. */
export function readLeaf(pem: string | undefined): Leaf | undefined {
  const block = pem?.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/)?.[0];
  if (!block) return undefined;
  let cert: NativeCertificate;
  try {
    cert = new NativeCertificate(block);
  } catch {
    return undefined;
  }
  const key = cert.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  const keyAlgorithm =
    key.asymmetricKeyType === "rsa" && details.modulusLength === 2048
      ? "rsa-2048"
      : key.asymmetricKeyType === "ec" && details.namedCurve === "prime256v1"
        ? "ecdsa-p256"
        : "other";
  const dnsNames = (cert.subjectAltName ?? "")
    .split(", ")
    .filter((n) => n.startsWith("DNS:"))
    .map((n) => n.slice(4))
    .sort();
  return {
    cert,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    dnsNames,
    keyAlgorithm,
  };
}

const nativeOf = new WeakMap<x509.X509Certificate, NativeCertificate>();

/** Signed by `issuer`'s key, and naming it as issuer (subject and key identifier). */
export function leafIssuedBy(leaf: Leaf, issuer: x509.X509Certificate): boolean {
  let ca = nativeOf.get(issuer);
  if (!ca) nativeOf.set(issuer, (ca = new NativeCertificate(Buffer.from(issuer.rawData))));
  return leaf.cert.checkIssued(ca) && leaf.cert.verify(ca.publicKey);
}

/** Whether `keyPem` is the private half of the certificate's public key. */
export function leafKeyMatches(keyPem: string, leaf: Leaf): boolean {
  const rsa = rsaPublicPartOf(keyPem);
  if (rsa) {
    const jwk = leaf.cert.publicKey.export({ format: "jwk" });
    return jwk.kty === "RSA" && jwk.n === rsa.n && jwk.e === rsa.e;
  }
  try {
    const key: KeyObject = createPrivateKey(keyPem);
    return createPublicKey(key).equals(leaf.cert.publicKey);
  } catch {
    return false;
  }
}

/**
 * An RSA private key's modulus and exponent (base64url, as in a JWK), read from its DER without importing the
 * key: OpenSSL's import costs ~0.3 ms, most of a scan's time per Secret. Undefined for anything that is not a
 * well-formed PKCS#8 or PKCS#1 RSA key, which then takes the import path.
 */
function rsaPublicPartOf(pem: string): { n: string; e: string } | undefined {
  const m = /-----BEGIN (RSA )?PRIVATE KEY-----([\s\S]+?)-----END (RSA )?PRIVATE KEY-----/.exec(pem);
  if (!m || m[1] !== m[3]) return undefined;
  const der = Buffer.from(m[2]!.replace(/\s+/g, ""), "base64");
  try {
    let rsaKey = der;
    if (!m[1]) {
      // PrivateKeyInfo ::= SEQUENCE { version INTEGER, algorithm SEQUENCE { OID, params }, privateKey OCTET STRING }
      const info = tlv(der, 0, 0x30);
      const version = tlv(der, info.start, 0x02);
      const algorithm = tlv(der, version.end, 0x30);
      const oid = tlv(der, algorithm.start, 0x06);
      if (!der.subarray(oid.start, oid.end).equals(RSA_ENCRYPTION)) return undefined;
      const octets = tlv(der, algorithm.end, 0x04);
      rsaKey = der.subarray(octets.start, octets.end);
    }
    // RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, privateExponent, prime1, prime2,
    // exponent1, exponent2, coefficient } (all INTEGERs): walked to the end, so a truncated or mangled key is
    // refused here as an import would refuse it.
    const seq = tlv(rsaKey, 0, 0x30);
    const version = tlv(rsaKey, seq.start, 0x02);
    const n = tlv(rsaKey, version.end, 0x02);
    const e = tlv(rsaKey, n.end, 0x02);
    let end = e.end;
    for (let i = 0; i < 6; i++) end = tlv(rsaKey, end, 0x02).end;
    if (end !== seq.end || seq.end !== rsaKey.length) return undefined;
    return { n: unsigned(rsaKey.subarray(n.start, n.end)), e: unsigned(rsaKey.subarray(e.start, e.end)) };
  } catch {
    return undefined;
  }
}

const RSA_ENCRYPTION = Buffer.from("2a864886f70d010101", "hex"); // 1.2.840.113549.1.1.1

/** One DER tag-length-value at `at`, which must carry `tag`; throws on anything malformed. */
function tlv(buf: Buffer, at: number, tag: number): { start: number; end: number } {
  if (buf[at] !== tag) throw new Error("unexpected tag");
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const bytes = len & 0x7f;
    if (bytes < 1 || bytes > 4) throw new Error("bad length");
    len = 0;
    for (let i = 0; i < bytes; i++) len = len * 256 + buf[start + i]!;
    start += bytes;
  }
  if (start + len > buf.length) throw new Error("truncated");
  return { start, end: start + len };
}

/** A DER INTEGER's content as the unsigned big-endian base64url a JWK uses. */
function unsigned(bytes: Buffer): string {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  return bytes.subarray(i).toString("base64url");
}
