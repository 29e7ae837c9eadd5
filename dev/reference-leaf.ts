// A leaf written by @peculiar/x509's X509CertificateGenerator, as every leaf was before shared/pki/der.ts: the
// reference the hand-encoded leaf is compared with, byte for byte (test/unit/leaf-der.test.ts, bench/signing.ts).
import { x509 } from "../shared/pki/x509.ts";
import { rsaSigning, type Signer } from "../shared/pki/index.ts";

export interface ReferenceLeaf {
  serialNumber: string;
  commonName: string;
  dnsNames: string[];
  notBefore: Date;
  notAfter: Date;
  publicKey: CryptoKey;
  keyUsages: number;
}

export async function referenceLeaf(spec: ReferenceLeaf, by: Signer): Promise<x509.X509Certificate> {
  const publicKey = await x509.PublicKey.create(spec.publicKey);
  return x509.X509CertificateGenerator.create({
    serialNumber: spec.serialNumber,
    subject: new x509.Name([{ CN: [spec.commonName] }]),
    issuer: by.cert.subjectName,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    publicKey,
    signingKey: by.key,
    signingAlgorithm: rsaSigning,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      ...(spec.keyUsages ? [new x509.KeyUsagesExtension(spec.keyUsages, true)] : []),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(by.cert),
      new x509.SubjectAlternativeNameExtension(
        spec.dnsNames.map((value) => ({ type: "dns" as const, value })),
      ),
    ],
  });
}
