// Reading certificates back: parse, compare keys, check issuers, list names.
import { x509 } from "./x509.ts";
import { publicKeyDerOfPrivatePem } from "./keys.ts";

export function parseCertificates(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new x509.X509Certificate(b));
}

/** The first certificate of a PEM chain, or undefined when there is none or it does not parse. */
export function tryParseLeaf(pem: string | undefined): x509.X509Certificate | undefined {
  if (!pem) return undefined;
  try {
    return parseCertificates(pem)[0];
  } catch {
    return undefined;
  }
}

export function keyMatchesCertificate(keyPem: string, cert: x509.X509Certificate): boolean {
  try {
    return publicKeyDerOfPrivatePem(keyPem).equals(Buffer.from(cert.publicKey.rawData));
  } catch {
    return false;
  }
}

export function subjectKeyId(cert: x509.X509Certificate): string | undefined {
  return cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
}

export function authorityKeyId(cert: x509.X509Certificate): string | undefined {
  return cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId ?? undefined;
}

/** Issued by `issuer`: key identifiers agree (when both are present) and the signature verifies with its key. */
export async function isIssuedBy(cert: x509.X509Certificate, issuer: x509.X509Certificate): Promise<boolean> {
  const akid = authorityKeyId(cert);
  const skid = subjectKeyId(issuer);
  if (akid && skid && akid !== skid) return false;
  if (!akid && cert.issuer !== issuer.subject) return false;
  try {
    return await cert.verify({ publicKey: issuer.publicKey, signatureOnly: true });
  } catch {
    return false;
  }
}

export function dnsNames(cert: x509.X509Certificate): string[] {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  return (san?.names.items ?? [])
    .filter((n) => n.type === "dns")
    .map((n) => n.value)
    .sort();
}

export const sameNames = (a: string[], b: string[]) =>
  a.length === b.length && [...a].sort().every((v, i) => v === [...b].sort()[i]);

export const commonName = (cert: x509.X509Certificate) => cert.subjectName.getField("CN")[0];
