// Creating a certificate authority: self-signed, a fresh subject per generation, 26 months by default.
import { x509 } from "./x509.ts";
import { generateKeyPair, privateKeyToPem, randomSerial, rsaSigning } from "./keys.ts";
import { DAY_MS } from "./time.ts";
import { commonName } from "./inspect.ts";

export const CA_VALIDITY_DAYS = 790;
export const CA_SUBJECT_PREFIX = "service-ca-functions-signer@";

/** What every CA certificate carries, self-signed or cross-signed: CA:TRUE, certificate/CRL signing, SKID. */
async function caExtensions(publicKey: x509.PublicKey | CryptoKey): Promise<x509.Extension[]> {
  return [
    new x509.BasicConstraintsExtension(true, undefined, true),
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(publicKey),
  ];
}

export interface IssuedPem {
  certPem: string;
  keyPem: string;
}

export interface CreateAuthorityOptions {
  now: Date;
  /** The CA this one replaces: the new name is never the same as its name, even within the same second. */
  predecessor?: x509.X509Certificate;
  validityDays?: number;
  keys?: CryptoKeyPair;
}

/**
 * The second a CA's name carries: its creation's, or one past its predecessor's, as the name (what the signed-by
 * annotation records) must tell two CAs made within one second apart. Validity still starts at `now`.
 */
function nameSeconds(now: Date, predecessor?: x509.X509Certificate): number {
  const seconds = Math.floor(now.getTime() / 1000);
  const previous = predecessor && commonName(predecessor);
  const previousSeconds = previous?.startsWith(CA_SUBJECT_PREFIX)
    ? Number(previous.slice(CA_SUBJECT_PREFIX.length))
    : NaN;
  return Number.isInteger(previousSeconds) && previousSeconds >= seconds ? previousSeconds + 1 : seconds;
}

export async function createAuthority(
  opts: CreateAuthorityOptions,
): Promise<IssuedPem & { cert: x509.X509Certificate }> {
  const keys = opts.keys ?? (await generateKeyPair("rsa-2048"));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${CA_SUBJECT_PREFIX}${nameSeconds(opts.now, opts.predecessor)}`,
    notBefore: new Date(opts.now.getTime() - 1000),
    notAfter: new Date(opts.now.getTime() + (opts.validityDays ?? CA_VALIDITY_DAYS) * DAY_MS),
    keys,
    signingAlgorithm: rsaSigning,
    extensions: await caExtensions(keys.publicKey),
  });
  return { cert, certPem: cert.toString("pem") + "\n", keyPem: await privateKeyToPem(keys.privateKey) };
}

/**
 * Re-issues `subject` (same subject name and public key) under `issuer`: the bridge that lets a client
 * trusting `issuer` accept certificates `subject` signed. A new serial avoids reused issuer+serial errors.
 */
export async function crossSign(opts: {
  subject: x509.X509Certificate;
  issuer: { cert: x509.X509Certificate; key: CryptoKey };
  notAfter: Date;
  now: Date;
}): Promise<x509.X509Certificate> {
  const notAfter = opts.notAfter < opts.issuer.cert.notAfter ? opts.notAfter : opts.issuer.cert.notAfter;
  return x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: opts.subject.subjectName,
    issuer: opts.issuer.cert.subjectName,
    notBefore: new Date(opts.now.getTime() - 1000),
    notAfter,
    publicKey: opts.subject.publicKey,
    signingKey: opts.issuer.key,
    signingAlgorithm: rsaSigning,
    extensions: [
      ...(await caExtensions(opts.subject.publicKey)),
      await x509.AuthorityKeyIdentifierExtension.create(opts.issuer.cert),
    ],
  });
}

/** Rotation is due when less than `minRemainingDays` of the CA's validity are left. */
export const rotationDue = (ca: x509.X509Certificate, now: Date, minRemainingDays: number) =>
  ca.notAfter.getTime() - now.getTime() < minRemainingDays * DAY_MS;
