// Reading certificates back: parse and list names. The checks a served certificate must pass (key match,
// issuer, names) are in leaf-check.ts.
import { x509 } from "./x509.ts";

export function parseCertificates(pem: string): x509.X509Certificate[] {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  return blocks.map((b) => new x509.X509Certificate(b));
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
