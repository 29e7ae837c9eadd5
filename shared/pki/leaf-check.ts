// The checks a scan makes on every served certificate. The certificate is read by the project's own DER reader and
// its signature checked with one native call against a key object kept per CA: an OpenSSL X509 object and two key
// objects per Secret (node:crypto's X509Certificate) took twice the CPU.
// Anything the reader does not know (another signature algorithm, an issuer named in other bytes) is handed to
// node:crypto's X509Certificate, whose answer stands.
import {
  X509Certificate as NativeCertificate,
  createPrivateKey,
  createPublicKey,
  verify,
  type KeyObject,
} from "node:crypto";
import type { x509 } from "./x509.ts";
import type { KeyAlgorithm } from "./keys.ts";
import { bytesEqual, oidText, readAll, readTime, readTlv, unsignedBytes, type Tlv } from "./der-read.ts";
import { TAG } from "./der.ts";

/** What judging reads of a certificate, as byte ranges of its DER. */
interface Fields {
  tbs: Uint8Array;
  /** the outer signatureAlgorithm, which must equal the one inside the signed part */
  signatureAlgorithm: Uint8Array;
  innerSignatureAlgorithm: Uint8Array;
  signatureOid: string;
  signature: Uint8Array;
  issuer: Uint8Array;
  subject: Uint8Array;
  notBefore: Date;
  notAfter: Date;
  keyAlgorithm: KeyAlgorithm | "other";
  rsa?: { n: Uint8Array; e: Uint8Array };
  dnsNames: string[];
  authorityKeyId?: Uint8Array;
  subjectKeyId?: Uint8Array;
  /** undefined when the certificate has no key usage extension (then any use is allowed) */
  keyCertSign?: boolean;
}

const OID = {
  rsaEncryption: "1.2.840.113549.1.1.1",
  ecPublicKey: "1.2.840.10045.2.1",
  prime256v1: "1.2.840.10045.3.1.7",
  subjectAltName: "2.5.29.17",
  authorityKeyId: "2.5.29.35",
  subjectKeyId: "2.5.29.14",
  keyUsage: "2.5.29.15",
} as const;

/** The signature algorithms the reader checks itself: the hash, and the key type that signs with it. */
const SIGNATURES: Record<string, { hash: string; keyType: "rsa" | "ec" }> = {
  "1.2.840.113549.1.1.11": { hash: "sha256", keyType: "rsa" },
  "1.2.840.113549.1.1.12": { hash: "sha384", keyType: "rsa" },
  "1.2.840.113549.1.1.13": { hash: "sha512", keyType: "rsa" },
  "1.2.840.10045.4.3.2": { hash: "sha256", keyType: "ec" },
  "1.2.840.10045.4.3.3": { hash: "sha384", keyType: "ec" },
  "1.2.840.10045.4.3.4": { hash: "sha512", keyType: "ec" },
};

const ascii = (b: Uint8Array) => String.fromCharCode(...b);
/** A TLV's content. */
const span = (der: Uint8Array, t: Tlv) => der.subarray(t.start, t.end);

/** Certificate ::= TAG.sequence { tbsCertificate, signatureAlgorithm, signatureValue } (RFC 5280 §4.1). */
function readFields(der: Uint8Array): Fields {
  const cert = readTlv(der, 0, TAG.sequence);
  if (cert.end !== der.length) throw new Error("trailing bytes");
  const tbsTlv = readTlv(der, cert.start, TAG.sequence);
  const sigAlg = readTlv(der, tbsTlv.end, TAG.sequence);
  const sig = readTlv(der, sigAlg.end, TAG.bitString);
  if (sig.end !== cert.end || der[sig.start] !== 0) throw new Error("bad signature value");
  const tbs = readAll(der, tbsTlv.start, tbsTlv.end);
  let i = tbs[0]?.tag === 0xa0 ? 1 : 0; // version [0] EXPLICIT, absent for v1
  const [serial, innerAlg, issuer, validity, subject, spki] = tbs.slice(i, (i += 6));
  if (!spki || serial!.tag !== TAG.integer || innerAlg!.tag !== TAG.sequence || issuer!.tag !== TAG.sequence)
    throw new Error("not a TBSCertificate");
  if (validity!.tag !== TAG.sequence || subject!.tag !== TAG.sequence || spki.tag !== TAG.sequence)
    throw new Error("not a TBSCertificate");
  const [from, to] = readAll(der, validity!.start, validity!.end);
  if (!to) throw new Error("bad validity");
  const whole = (t: Tlv) => der.subarray(t.at, t.end);
  const fields: Fields = {
    tbs: whole(tbsTlv),
    signatureAlgorithm: whole(sigAlg),
    innerSignatureAlgorithm: whole(innerAlg!),
    signatureOid: oidText(span(der, readTlv(der, sigAlg.start, TAG.oid))),
    signature: der.subarray(sig.start + 1, sig.end),
    issuer: whole(issuer!),
    subject: whole(subject!),
    notBefore: readTime(der, from!),
    notAfter: readTime(der, to),
    keyAlgorithm: "other",
    dnsNames: [],
  };
  readKey(der, spki, fields);
  for (const t of tbs.slice(i))
    if (t.tag === 0xa3) readExtensions(der, readTlv(der, t.start, TAG.sequence), fields);
  return fields;
}

function readKey(der: Uint8Array, spki: Tlv, out: Fields): void {
  const alg = readTlv(der, spki.start, TAG.sequence);
  const key = readTlv(der, alg.end, TAG.bitString);
  const oid = oidText(span(der, readTlv(der, alg.start, TAG.oid)));
  if (oid === OID.rsaEncryption) {
    if (der[key.start] !== 0) throw new Error("bad key bits");
    const seq = readTlv(der, key.start + 1, TAG.sequence);
    const n = readTlv(der, seq.start, TAG.integer);
    const e = readTlv(der, n.end, TAG.integer);
    out.rsa = {
      n: unsignedBytes(span(der, n)),
      e: unsignedBytes(span(der, e)),
    };
    const bits = out.rsa.n.length * 8 - Math.clz32(out.rsa.n[0]!) + 24;
    if (bits === 2048) out.keyAlgorithm = "rsa-2048";
  } else if (oid === OID.ecPublicKey) {
    const params = readTlv(der, readTlv(der, alg.start).end);
    if (params.tag === TAG.oid && oidText(span(der, params)) === OID.prime256v1)
      out.keyAlgorithm = "ecdsa-p256";
  }
}

/** Extensions ::= TAG.sequence OF TAG.sequence { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING } */
function readExtensions(der: Uint8Array, list: Tlv, out: Fields): void {
  for (const ext of readAll(der, list.start, list.end)) {
    const parts = readAll(der, ext.start, ext.end);
    const id = oidText(span(der, parts[0]!));
    const value = parts[parts.length - 1]!;
    if (value.tag !== TAG.octetString) throw new Error("bad extension");
    if (id === OID.subjectAltName) {
      const names = readTlv(der, value.start, TAG.sequence);
      for (const n of readAll(der, names.start, names.end))
        if (n.tag === 0x82) out.dnsNames.push(ascii(span(der, n)));
      out.dnsNames.sort();
    } else if (id === OID.authorityKeyId) {
      const seq = readTlv(der, value.start, TAG.sequence);
      const first = readAll(der, seq.start, seq.end)[0];
      if (first?.tag === 0x80) out.authorityKeyId = span(der, first);
    } else if (id === OID.subjectKeyId) {
      out.subjectKeyId = span(der, readTlv(der, value.start, TAG.octetString));
    } else if (id === OID.keyUsage) {
      const bits = readTlv(der, value.start, TAG.bitString);
      out.keyCertSign = ((der[bits.start + 1] ?? 0) & 0x04) !== 0; // bit 5, keyCertSign
    }
  }
}

/** A served certificate as the reader found it; made only by `readLeaf`. */
export class Leaf {
  #native?: NativeCertificate;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly dnsNames: string[];
  readonly keyAlgorithm: KeyAlgorithm | "other";
  constructor(
    readonly der: Uint8Array,
    /** @internal */
    readonly fields: Fields,
  ) {
    this.notBefore = fields.notBefore;
    this.notAfter = fields.notAfter;
    this.dnsNames = fields.dnsNames;
    this.keyAlgorithm = fields.keyAlgorithm;
  }
  /** node:crypto's view of the same certificate, made on first use (the plugin's report reads it) */
  get cert(): NativeCertificate {
    return (this.#native ??= new NativeCertificate(this.der));
  }
}

/** The first certificate of a PEM chain, or undefined when there is none or it does not parse. */
export function readLeaf(pem: string | undefined): Leaf | undefined {
  const body = pem?.match(/-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/)?.[1];
  if (!body) return undefined;
  const der = Buffer.from(body, "base64"); // the decoder skips the line breaks
  try {
    return new Leaf(der, readFields(der));
  } catch {
    return undefined;
  }
}

interface Issuer {
  fields?: Fields;
  key: KeyObject;
  native: NativeCertificate;
}
const issuers = new WeakMap<x509.X509Certificate, Issuer>();

function issuerOf(ca: x509.X509Certificate): Issuer {
  let found = issuers.get(ca);
  if (!found) {
    const der = new Uint8Array(ca.rawData);
    const native = new NativeCertificate(der);
    let fields: Fields | undefined;
    try {
      fields = readFields(der);
    } catch {
      fields = undefined; // judged by node:crypto alone
    }
    issuers.set(ca, (found = { fields, key: native.publicKey, native }));
  }
  return found;
}

/** Signed by `issuer`'s key, and naming it as issuer (subject and key identifier). */
export function leafIssuedBy(leaf: Leaf, issuer: x509.X509Certificate): boolean {
  const ca = issuerOf(issuer);
  const own = leaf.fields;
  const algorithm = SIGNATURES[own.signatureOid];
  if (!ca.fields || !algorithm || !bytesEqual(own.issuer, ca.fields.subject)) {
    try {
      return leaf.cert.checkIssued(ca.native) && leaf.cert.verify(ca.key);
    } catch {
      return false; // OpenSSL does not take it as a certificate at all
    }
  }
  if (own.authorityKeyId && ca.fields.subjectKeyId && !bytesEqual(own.authorityKeyId, ca.fields.subjectKeyId))
    return false;
  if (ca.fields.keyCertSign === false) return false;
  if (!bytesEqual(own.signatureAlgorithm, own.innerSignatureAlgorithm)) return false;
  if (ca.key.asymmetricKeyType !== algorithm.keyType) return false;
  try {
    return verify(algorithm.hash, own.tbs, ca.key, own.signature);
  } catch {
    return false;
  }
}

/** Whether `keyPem` is the private half of the certificate's public key. */
export function leafKeyMatches(keyPem: string, leaf: Leaf): boolean {
  const rsa = rsaPublicPartOf(keyPem);
  if (rsa) {
    const own = leaf.fields.rsa;
    return own !== undefined && bytesEqual(own.n, rsa.n) && bytesEqual(own.e, rsa.e);
  }
  try {
    const key: KeyObject = createPrivateKey(keyPem);
    return createPublicKey(key).equals(leaf.cert.publicKey);
  } catch {
    return false;
  }
}

/**
 * An RSA private key's modulus and exponent, read from its DER without importing the key: OpenSSL's import costs
 * ~0.3 ms, most of a scan's time per Secret. Undefined for anything that is not a well-formed PKCS#8 or PKCS#1 RSA
 * key, which then takes the import path.
 */
function rsaPublicPartOf(pem: string): { n: Uint8Array; e: Uint8Array } | undefined {
  const m = /-----BEGIN (RSA )?PRIVATE KEY-----([\s\S]+?)-----END (RSA )?PRIVATE KEY-----/.exec(pem);
  if (!m || m[1] !== m[3]) return undefined;
  const der = Buffer.from(m[2]!, "base64");
  try {
    let rsaKey: Uint8Array = der;
    if (!m[1]) {
      // PrivateKeyInfo ::= TAG.sequence { version INTEGER, algorithm TAG.sequence { OID, params }, privateKey OCTET STRING }
      const info = readTlv(der, 0, TAG.sequence);
      const version = readTlv(der, info.start, TAG.integer);
      const algorithm = readTlv(der, version.end, TAG.sequence);
      if (oidText(span(der, readTlv(der, algorithm.start, TAG.oid))) !== OID.rsaEncryption) return undefined;
      rsaKey = span(der, readTlv(der, algorithm.end, TAG.octetString));
    }
    // RSAPrivateKey ::= TAG.sequence { version, modulus, publicExponent, privateExponent, prime1, prime2,
    // exponent1, exponent2, coefficient } (all INTEGERs): walked to the end, so a truncated or mangled key is
    // refused here as an import would refuse it.
    const seq = readTlv(rsaKey, 0, TAG.sequence);
    const version = readTlv(rsaKey, seq.start, TAG.integer);
    const n = readTlv(rsaKey, version.end, TAG.integer);
    const e = readTlv(rsaKey, n.end, TAG.integer);
    let end = e.end;
    for (let i = 0; i < 6; i++) end = readTlv(rsaKey, end, TAG.integer).end;
    if (end !== seq.end || seq.end !== rsaKey.length) return undefined;
    return {
      n: unsignedBytes(span(rsaKey, n)),
      e: unsignedBytes(span(rsaKey, e)),
    };
  } catch {
    return undefined;
  }
}
