// CA bundles: PEM lists of certificates, and which of them are still worth trusting at a given time.
import type { x509 } from "./x509.ts";
import { parseCertificates } from "./inspect.ts";

export function encodeBundle(certs: x509.X509Certificate[]): string {
  return certs.map((c) => c.toString("pem") + "\n").join("");
}

export const decodeBundle = parseCertificates;

export const isValidAt = (cert: x509.X509Certificate, at: Date) => cert.notBefore <= at && at < cert.notAfter;

/** Drops expired certificates and duplicates (same DER), keeping order. */
export function trustedAt(certs: x509.X509Certificate[], at: Date): x509.X509Certificate[] {
  const seen = new Set<string>();
  return certs.filter((c) => {
    const der = Buffer.from(c.rawData).toString("base64");
    if (seen.has(der) || c.notAfter <= at) return false;
    seen.add(der);
    return true;
  });
}
