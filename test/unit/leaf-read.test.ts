// The scan's certificate reader (shared/pki/leaf-check.ts on shared/pki/der-read.ts) against node:crypto's
// X509Certificate: the same fields, the same verdict on who issued it, and never "issued by" where OpenSSL says no.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { X509Certificate as Native, webcrypto } from "node:crypto";
import fc from "fast-check";
import { x509 } from "../../shared/pki/x509.ts";
import {
  createAuthority,
  importPrivateKeyPem,
  leafIssuedBy,
  readLeaf,
  signServingCertificate,
  type Signer,
} from "../../shared/pki/index.ts";
import { oidText, readTime, readTlv } from "../../shared/pki/der-read.ts";

const now = new Date("2026-12-02T10:00:00Z");
let ca: Awaited<ReturnType<typeof createAuthority>>;
let twin: Awaited<ReturnType<typeof createAuthority>>;
let signer: Signer;
const pemOf = (der: Uint8Array) =>
  `-----BEGIN CERTIFICATE-----\n${Buffer.from(der)
    .toString("base64")
    .match(/.{1,64}/g)!
    .join("\n")}\n-----END CERTIFICATE-----\n`;
const derOf = (pem: string) => new Native(pem).raw;

/** What node:crypto says of a certificate, in the reader's terms. */
function nativeView(pem: string) {
  const c = new Native(pem);
  const d = c.publicKey.asymmetricKeyDetails ?? {};
  return {
    notBefore: new Date(c.validFrom).getTime(),
    notAfter: new Date(c.validTo).getTime(),
    dnsNames: (c.subjectAltName ?? "")
      .split(", ")
      .filter((n) => n.startsWith("DNS:"))
      .map((n) => n.slice(4))
      .sort(),
    keyAlgorithm:
      c.publicKey.asymmetricKeyType === "rsa" && d.modulusLength === 2048
        ? "rsa-2048"
        : c.publicKey.asymmetricKeyType === "ec" && d.namedCurve === "prime256v1"
          ? "ecdsa-p256"
          : "other",
  };
}

const readerView = (pem: string) => {
  const leaf = readLeaf(pem)!;
  return {
    notBefore: leaf.notBefore.getTime(),
    notAfter: leaf.notAfter.getTime(),
    dnsNames: leaf.dnsNames,
    keyAlgorithm: leaf.keyAlgorithm,
  };
};

function nativeIssuedBy(pem: string, issuer: x509.X509Certificate): boolean {
  const i = new Native(Buffer.from(issuer.rawData));
  try {
    const c = new Native(pem);
    return c.checkIssued(i) && c.verify(i.publicKey);
  } catch {
    return false; // not a certificate to OpenSSL
  }
}

before(async () => {
  ca = await createAuthority({ now });
  twin = await createAuthority({ now }); // the same subject, another key
  signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
});

describe("the scan's certificate reader", () => {
  it("reads what node:crypto reads: validity, DNS names, key algorithm (RSA, ECDSA, wildcards, a CA, past 2050)", async () => {
    const pems = [
      (await signServingCertificate({ signer, hostnames: ["a.ns.svc", "a.ns.svc.cluster.local"], now }))
        .certPem,
      (
        await signServingCertificate({
          signer,
          hostnames: ["h.ns.svc", "*.h.ns.svc", "h.ns.svc.cluster.local", "*.h.ns.svc.cluster.local"],
          now,
          keyAlgorithm: "ecdsa-p256",
        })
      ).certPem,
      ca.certPem,
      // GeneralizedTime: a CA made in 2049 runs past 2050, and so does its leaf
      (await createAuthority({ now: new Date("2049-06-01T00:00:00Z") })).certPem,
    ];
    const late = await createAuthority({ now: new Date("2049-06-01T00:00:00Z") });
    const lateSigner = { cert: late.cert, key: await importPrivateKeyPem(late.keyPem) };
    pems.push(
      (
        await signServingCertificate({
          signer: lateSigner,
          hostnames: ["z.ns.svc"],
          now: new Date("2049-12-01"),
        })
      ).certPem,
    );
    for (const pem of pems) assert.deepEqual(readerView(pem), nativeView(pem));
    assert.ok(readLeaf(pems.at(-1))!.notAfter.getUTCFullYear() >= 2050);
  });

  it("issued by: the same verdict as node:crypto for the signer, a twin CA, a self-signed CA and an ECDSA signer", async () => {
    const leaf = (await signServingCertificate({ signer, hostnames: ["x.ns.svc"], now })).certPem;
    const ecKeys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
      "sign",
      "verify",
    ])) as CryptoKeyPair;
    const ecCa = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=ec test",
      notBefore: now,
      notAfter: new Date(now.getTime() + 86_400_000),
      keys: ecKeys,
      signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true)],
    });
    const cases: Array<[string, x509.X509Certificate, boolean]> = [
      [leaf, ca.cert, true],
      [leaf, twin.cert, false],
      [ca.certPem, ca.cert, true],
      [ca.certPem, twin.cert, false],
      [ecCa.toString("pem"), ecCa, true],
      [leaf, ecCa, false],
    ];
    for (const [pem, issuer, want] of cases) {
      assert.equal(nativeIssuedBy(pem, issuer), want);
      assert.equal(leafIssuedBy(readLeaf(pem)!, issuer), want);
    }
  });

  it("a changed signature, signed part or outer algorithm is not issued by the CA; trailing or missing bytes do not parse", async () => {
    const der = derOf((await signServingCertificate({ signer, hostnames: ["t.ns.svc"], now })).certPem);
    const cert = readTlv(der, 0, 0x30);
    const tbs = readTlv(der, cert.start, 0x30);
    const alg = readTlv(der, tbs.end, 0x30);
    const oid = readTlv(der, alg.start, 0x06);
    assert.equal(oidText(der.subarray(oid.start, oid.end)), "1.2.840.113549.1.1.11");
    const mutate = (at: number, to: number) => {
      const copy = Buffer.from(der);
      copy[at] = to;
      return pemOf(copy);
    };
    const variants = [
      mutate(der.length - 1, der[der.length - 1]! ^ 1), // the signature's last byte
      mutate(tbs.end - 3, der[tbs.end - 3]! ^ 1), // inside the signed part (the last extension)
      mutate(oid.end - 1, 0x0c), // sha384WithRSAEncryption outside, sha256 inside
    ];
    for (const pem of variants) {
      assert.equal(nativeIssuedBy(pem, ca.cert), false);
      const leaf = readLeaf(pem);
      assert.ok(!leaf || !leafIssuedBy(leaf, ca.cert));
    }
    assert.equal(readLeaf(pemOf(Buffer.concat([der, Buffer.from([0])]))), undefined);
    assert.equal(readLeaf(pemOf(der.subarray(0, der.length - 1))), undefined);
  });

  it("never says issued by where node:crypto says no, whatever byte of a certificate changes", async () => {
    const der = derOf((await signServingCertificate({ signer, hostnames: ["f.ns.svc"], now })).certPem);
    fc.assert(
      fc.property(fc.nat(der.length - 1), fc.integer({ min: 0, max: 255 }), (at, value) => {
        const copy = Buffer.from(der);
        copy[at] = value;
        const pem = pemOf(copy);
        const leaf = readLeaf(pem);
        if (!leaf || !leafIssuedBy(leaf, ca.cert)) return true;
        return nativeIssuedBy(pem, ca.cert) && readerView(pem).notAfter === nativeView(pem).notAfter;
      }),
      { numRuns: 2000 },
    );
  });

  it("reads both DER times and refuses other forms", () => {
    const time = (tag: number, text: string) => {
      const buf = Buffer.from([tag, text.length, ...Buffer.from(text)]);
      return readTime(buf, readTlv(buf, 0));
    };
    assert.equal(time(0x17, "491231235959Z").toISOString(), "2049-12-31T23:59:59.000Z");
    assert.equal(time(0x17, "500101000000Z").toISOString(), "1950-01-01T00:00:00.000Z");
    assert.equal(time(0x18, "20500101000000Z").toISOString(), "2050-01-01T00:00:00.000Z");
    assert.throws(() => time(0x17, "4912312359Z"));
    assert.throws(() => time(0x18, "20500101000000+0100"));
  });
});
