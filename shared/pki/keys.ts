// Key generation and PEM encoding on Node's WebCrypto (key generation runs off the main thread there).
import { createPrivateKey, createPublicKey, webcrypto } from "node:crypto";
import { x509 } from "./x509.ts";
export const subtle = webcrypto.subtle as unknown as SubtleCrypto;

export type KeyAlgorithm = "rsa-2048" | "ecdsa-p256";

export const rsaSigning = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const rsaKeyGen = { ...rsaSigning, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
const ecdsaKeyGen = { name: "ECDSA", namedCurve: "P-256" } as const;

export function generateKeyPair(algorithm: KeyAlgorithm = "rsa-2048"): Promise<CryptoKeyPair> {
  const params = algorithm === "rsa-2048" ? rsaKeyGen : ecdsaKeyGen;
  return subtle.generateKey(params, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

export async function privateKeyToPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY") + "\n";
}

/** Imports a PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM key as a signing key. */
export async function importPrivateKeyPem(pem: string): Promise<CryptoKey> {
  const key = createPrivateKey(pem);
  const der = key.export({ type: "pkcs8", format: "der" });
  const algorithm =
    key.asymmetricKeyType === "rsa" ? rsaSigning : key.asymmetricKeyType === "ec" ? ecdsaKeyGen : null;
  if (!algorithm) throw new Error(`unsupported private key type ${key.asymmetricKeyType}`);
  return subtle.importKey("pkcs8", der, algorithm, true, ["sign"]);
}

/** The public half of a PEM private key, as a certificate carries it. */
export function publicKeyOfPem(pem: string): x509.PublicKey {
  const spki = createPublicKey(createPrivateKey(pem)).export({ type: "spki", format: "der" });
  return new x509.PublicKey(new Uint8Array(spki).buffer);
}

export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = bytes[0]! & 0x7f; // positive
  if (bytes[0] === 0) bytes[0] = 1; // no leading zero byte
  return Buffer.from(bytes).toString("hex");
}
