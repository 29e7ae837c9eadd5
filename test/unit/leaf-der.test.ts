// The leaf's own DER encoding (shared/pki/der.ts, signLeaf) against @peculiar/x509's generator, which wrote every
// leaf before it: given the same serial, times, names and key, both must produce the same bytes, signature included
// (RSASSA-PKCS1-v1_5 is deterministic). openssl then reads the certificate as any client would.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { x509 } from "../../shared/pki/x509.ts";
import * as der from "../../shared/pki/der.ts";
import { referenceLeaf } from "../../dev/reference-leaf.ts";
import {
  createAuthority,
  generateKeyPair,
  importPrivateKeyPem,
  rsaSigning,
  signLeaf,
  type Signer,
} from "../../shared/pki/index.ts";

const t0 = new Date("2026-01-01T00:00:00.750Z");
let signer: Signer;
let caPem: string;

before(async () => {
  const ca = await createAuthority({ now: t0 });
  caPem = ca.certPem;
  signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
});

describe("a leaf's DER", () => {
  const serving = x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment;
  const cases = [
    {
      what: "a Service's names (PrintableString CN)",
      cn: "web.shop.svc",
      names: ["web.shop.svc", "web.shop.svc.cluster.local"],
      usages: serving,
      key: "rsa-2048" as const,
    },
    {
      what: "a headless Service's wildcards (UTF8String CN)",
      cn: "*.db.data.svc",
      names: ["*.db.data.svc", "db.data.svc"],
      usages: serving,
      key: "rsa-2048" as const,
    },
    {
      what: "an ECDSA key and no KeyUsage",
      cn: "a.b.svc",
      names: ["a.b.svc"],
      usages: 0,
      key: "ecdsa-p256" as const,
    },
    // Past 2049 a certificate's time is a GeneralizedTime; a SAN list past 127 bytes takes a long-form length.
    {
      what: "a not-after past 2049 and a long SAN list",
      cn: "long.svc",
      names: Array.from({ length: 12 }, (_, i) => `name-${i}.a-rather-long-namespace.svc.cluster.local`),
      usages: serving,
      key: "rsa-2048" as const,
      until: new Date("2051-06-01T12:00:00Z"),
    },
  ];
  for (const c of cases)
    it(`is byte for byte what @peculiar/x509 writes: ${c.what}`, async () => {
      const keys = await generateKeyPair(c.key);
      const by = c.until ? { cert: await longLivedCa(), key: signer.key } : signer;
      const signed = await signLeaf({
        signer: by,
        commonName: c.cn,
        publicKey: keys.publicKey,
        dnsNames: c.names,
        now: t0,
        notAfter: c.until ?? new Date(t0.getTime() + 30 * 86_400_000),
        keyUsages: c.usages,
      });
      const leaf = new x509.X509Certificate(signed.der);
      assert.equal(leaf.notBefore.getTime(), Math.floor((t0.getTime() - 1000) / 1000) * 1000);
      assert.equal(signed.notAfter.getTime(), leaf.notAfter.getTime());
      assert.equal(signed.pem, leaf.toString("pem"));
      const reference = await referenceLeaf(
        {
          serialNumber: leaf.serialNumber,
          commonName: c.cn,
          dnsNames: c.names,
          notBefore: leaf.notBefore,
          notAfter: leaf.notAfter,
          publicKey: keys.publicKey,
          keyUsages: c.usages,
        },
        by,
      );
      assert.equal(Buffer.from(signed.der).toString("hex"), Buffer.from(reference.rawData).toString("hex"));
    });

  it("openssl reads it: verified by its CA, names, key usages and key identifiers", async () => {
    const keys = await generateKeyPair("rsa-2048");
    const signed = await signLeaf({
      signer,
      commonName: "web.shop.svc",
      publicKey: keys.publicKey,
      dnsNames: ["web.shop.svc", "web.shop.svc.cluster.local"],
      now: new Date(),
      notAfter: new Date(Date.now() + 86_400_000),
      keyUsages: serving,
    });
    const dir = mkdtempSync(join(tmpdir(), "leaf-der-"));
    writeFileSync(join(dir, "ca.crt"), caPem);
    writeFileSync(join(dir, "leaf.crt"), signed.pem);
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, encoding: "utf8" });
    assert.match(
      openssl("verify", "-x509_strict", "-purpose", "sslserver", "-CAfile", "ca.crt", "leaf.crt"),
      /leaf.crt: OK/,
    );
    const text = openssl("x509", "-noout", "-text", "-in", "leaf.crt");
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Subject: CN ?= ?web\.shop\.svc/);
    assert.match(text, /DNS:web\.shop\.svc, DNS:web\.shop\.svc\.cluster\.local/);
    assert.match(text, /X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment/);
    assert.match(text, /X509v3 Basic Constraints: critical\n\s+CA:FALSE/);
    assert.match(text, /TLS Web Server Authentication/);
    const ski = /Subject Key Identifier: *\n\s+([0-9A-F:]+)/.exec(text)?.[1];
    const aki = /Authority Key Identifier: *\n\s+(?:keyid:)?([0-9A-F:]+)/.exec(text)?.[1];
    const caSki = /Subject Key Identifier: *\n\s+([0-9A-F:]+)/.exec(
      execFileSync("openssl", ["x509", "-noout", "-text", "-in", "ca.crt"], { cwd: dir, encoding: "utf8" }),
    )?.[1];
    assert.ok(ski && aki && caSki);
    assert.equal(aki, caSki);
    assert.notEqual(ski, caSki);
  });
});

/** A CA valid past 2050 with the same key and name, so a leaf may run that long. */
async function longLivedCa(): Promise<x509.X509Certificate> {
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01",
    subject: signer.cert.subject,
    issuer: signer.cert.subject,
    notBefore: t0,
    notAfter: new Date("2060-01-01T00:00:00Z"),
    publicKey: signer.cert.publicKey,
    signingKey: signer.key,
    signingAlgorithm: rsaSigning,
    extensions: [signer.cert.getExtension(x509.SubjectKeyIdentifierExtension)!],
  });
  return cert;
}

describe("DER primitives", () => {
  const hex = (d: Uint8Array) => Buffer.from(d).toString("hex");
  it("lengths: short form below 128, long form above", () => {
    assert.equal(hex(der.octetString(new Uint8Array(127))).slice(0, 4), "047f");
    assert.equal(hex(der.octetString(new Uint8Array(128))).slice(0, 6), "048180");
    assert.equal(hex(der.octetString(new Uint8Array(300))).slice(0, 8), "0482012c");
  });
  it("integers: minimal, a zero octet before a high bit", () => {
    assert.equal(hex(der.unsignedInteger(Uint8Array.of(0, 0, 5))), "020105");
    assert.equal(hex(der.unsignedInteger(Uint8Array.of(0x80))), "02020080");
    assert.equal(hex(der.unsignedInteger(Uint8Array.of(0))), "020100");
    assert.equal(hex(der.smallInteger(2)), "020102");
  });
  it("object identifiers, with arcs past 127", () => {
    assert.equal(hex(der.oid("1.2.840.113549.1.1.11")), "06092a864886f70d01010b");
    assert.equal(hex(der.oid("2.5.29.17")), "0603551d11");
    assert.throws(() => der.oid("1"), /not an object identifier/);
  });
  it("times: UTCTime through 2049, GeneralizedTime from 2050, whole seconds", () => {
    assert.equal(
      Buffer.from(der.time(new Date("2049-12-31T23:59:59.999Z")).subarray(2)).toString(),
      "491231235959Z",
    );
    assert.equal(der.time(new Date("2049-12-31T23:59:59Z"))[0], 0x17);
    assert.equal(
      Buffer.from(der.time(new Date("2050-01-01T00:00:00Z")).subarray(2)).toString(),
      "20500101000000Z",
    );
    assert.equal(der.time(new Date("2050-01-01T00:00:00Z"))[0], 0x18);
  });
  it("a dNSName is ASCII or refused", () => {
    assert.equal(hex(der.implicit(2, der.ia5("a.b"))), "8203612e62");
    assert.throws(() => der.ia5("bücher.svc"), /not ASCII/);
  });
  it("reads back a SEQUENCE's elements and a BIT STRING's content", () => {
    const seq = der.sequence(
      der.smallInteger(1),
      der.bitString(Uint8Array.of(1, 2, 3)),
      der.octetString(new Uint8Array(200)),
    );
    const [a, b, c] = der.sequenceElements(seq);
    assert.equal(hex(a!), "020101");
    assert.equal(hex(der.bitStringContent(b!)), "010203");
    assert.equal(c!.length, 203);
  });
});
