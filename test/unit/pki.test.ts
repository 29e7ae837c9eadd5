// shared/pki on its own: what a CA and a serving certificate contain, and the checks built on them.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { x509 } from "../../shared/pki/x509.ts";
import {
  CA_VALIDITY_DAYS,
  DAY_MS,
  commonName,
  createAuthority,
  decodeBundle,
  dnsNames,
  encodeBundle,
  generateKeyPair,
  importPrivateKeyPem,
  leafIssuedBy,
  leafKeyMatches,
  readLeaf,
  servingHostnames,
  signServingCertificate,
  trustedAt,
  type Signer,
} from "../../shared/pki/index.ts";
import { extraKeys, keyWorthKeeping, reissueReason } from "../../shared/serving-cert/decide.ts";
import { KeyPool } from "../../shared/serving-cert/key-pool.ts";
import { annotations } from "../../shared/names.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
let ca: Awaited<ReturnType<typeof createAuthority>>;
let signer: Signer;

before(async () => {
  ca = await createAuthority({ now: t0 });
  signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
});

/** A signed leaf as a certificate object, to read its fields. */
const certOf = (leaf: { certPem: string }) => new x509.X509Certificate(leaf.certPem);

describe("certificate authority", () => {
  it("is a self-signed RSA-2048 CA with a per-generation subject, valid 790 days from a second ago", async () => {
    assert.equal(commonName(ca.cert), `service-ca-functions-signer@${t0.getTime() / 1000}`);
    assert.equal(ca.cert.subject, ca.cert.issuer);
    assert.equal(ca.cert.notBefore.getTime(), t0.getTime() - 1000);
    assert.equal(ca.cert.notAfter.getTime(), t0.getTime() + CA_VALIDITY_DAYS * DAY_MS);
    assert.equal(ca.cert.getExtension(x509.BasicConstraintsExtension)?.ca, true);
    const usages = ca.cert.getExtension(x509.KeyUsagesExtension)!.usages;
    assert.ok(usages & x509.KeyUsageFlags.keyCertSign && usages & x509.KeyUsageFlags.cRLSign);
    assert.ok(ca.cert.getExtension(x509.SubjectKeyIdentifierExtension));
    assert.equal((ca.cert.publicKey.algorithm as RsaHashedKeyAlgorithm).modulusLength, 2048);
    assert.equal(ca.cert.signatureAlgorithm.name, "RSASSA-PKCS1-v1_5");
    assert.ok(await ca.cert.verify({ signatureOnly: true }));
  });

  it("gets a fresh subject every generation", async () => {
    const next = await createAuthority({ now: new Date(t0.getTime() + 5000) });
    assert.notEqual(next.cert.subject, ca.cert.subject);
  });

  it("made within the same second as the CA it replaces, still gets a name of its own, and its validity from now", async () => {
    const within = new Date(t0.getTime() + 400);
    const next = await createAuthority({ now: within, predecessor: ca.cert });
    assert.equal(commonName(next.cert), `service-ca-functions-signer@${t0.getTime() / 1000 + 1}`);
    assert.equal(next.cert.notBefore.getTime(), t0.getTime() - 1000); // X.509 times carry whole seconds
    const after = await createAuthority({ now: within, predecessor: next.cert });
    assert.equal(commonName(after.cert), `service-ca-functions-signer@${t0.getTime() / 1000 + 2}`);
    // Later than its predecessor's second, the name is simply its own second.
    const later = await createAuthority({ now: new Date(t0.getTime() + 9000), predecessor: ca.cert });
    assert.equal(commonName(later.cert), `service-ca-functions-signer@${t0.getTime() / 1000 + 9}`);
  });
});

describe("serving certificate", () => {
  it("names the Service, has CN = the smallest SAN, serverAuth, and the CA's key identifier", async () => {
    const leaf = await signServingCertificate({
      signer,
      hostnames: servingHostnames("web", "shop", false),
      now: t0,
    });
    assert.deepEqual(dnsNames(certOf(leaf)), ["web.shop.svc", "web.shop.svc.cluster.local"]);
    assert.equal(commonName(certOf(leaf)), "web.shop.svc");
    assert.deepEqual(
      [...certOf(leaf).getExtension(x509.ExtendedKeyUsageExtension)!.usages],
      [x509.ExtendedKeyUsage.serverAuth],
    );
    const ku = certOf(leaf).getExtension(x509.KeyUsagesExtension)!.usages;
    assert.equal(ku, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment);
    assert.equal(
      certOf(leaf).getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
      ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
    );
    assert.equal(certOf(leaf).notAfter.getTime(), t0.getTime() + 730 * DAY_MS);
    const served = readLeaf(leaf.certPem)!;
    assert.equal(served.keyAlgorithm, "rsa-2048");
    assert.ok(leafKeyMatches(leaf.keyPem, served));
    assert.ok(leafIssuedBy(served, ca.cert));
  });

  it("adds wildcards for headless Services, CN then being the wildcard", async () => {
    const names = servingHostnames("db", "data", true);
    assert.deepEqual(names, [
      "*.db.data.svc",
      "*.db.data.svc.cluster.local",
      "db.data.svc",
      "db.data.svc.cluster.local",
    ]);
    const leaf = await signServingCertificate({ signer, hostnames: names, now: t0 });
    assert.equal(commonName(certOf(leaf)), "*.db.data.svc");
  });

  it("uses ECDSA P-256 when asked, still signed SHA256WithRSA by the CA", async () => {
    const leaf = await signServingCertificate({
      signer,
      hostnames: ["a.b.svc"],
      now: t0,
      keyAlgorithm: "ecdsa-p256",
    });
    assert.equal(readLeaf(leaf.certPem)!.keyAlgorithm, "ecdsa-p256");
    assert.equal(certOf(leaf).signatureAlgorithm.name, "RSASSA-PKCS1-v1_5");
    assert.ok(leafIssuedBy(readLeaf(leaf.certPem)!, ca.cert));
  });

  it("never outlives its CA", async () => {
    const late = new Date(ca.cert.notAfter.getTime() - 10 * DAY_MS);
    const leaf = await signServingCertificate({ signer, hostnames: ["a.b.svc"], now: late });
    assert.equal(certOf(leaf).notAfter.getTime(), ca.cert.notAfter.getTime());
  });

  it("is not issued by another CA, and a different key does not match it", async () => {
    const other = await createAuthority({ now: t0 });
    const leaf = await signServingCertificate({ signer, hostnames: ["a.b.svc"], now: t0 });
    const served = readLeaf(leaf.certPem)!;
    assert.equal(leafIssuedBy(served, other.cert), false);
    assert.equal(leafKeyMatches(other.keyPem, served), false);
    assert.equal(leafKeyMatches("not a key", served), false);
  });
});

describe("a serving certificate re-signed under another CA", () => {
  it("keeps the key it is given: the new certificate carries its public half and verifies under the new CA", async () => {
    const first = await signServingCertificate({ signer, hostnames: ["a.b.svc"], now: t0 });
    const next = await createAuthority({ now: t0 });
    const nextSigner = { cert: next.cert, key: await importPrivateKeyPem(next.keyPem) };
    const resigned = await signServingCertificate({
      signer: nextSigner,
      hostnames: ["a.b.svc"],
      now: t0,
      existingKeyPem: first.keyPem,
    });
    assert.equal(resigned.keyPem, first.keyPem);
    const served = readLeaf(resigned.certPem)!;
    assert.ok(leafKeyMatches(first.keyPem, served));
    assert.ok(leafIssuedBy(served, next.cert));
    assert.equal(leafIssuedBy(served, ca.cert), false);
    assert.notEqual(certOf(resigned).serialNumber, certOf(first).serialNumber);
  });

  it("keeps it only for a rotation whose old CA is still trusted, of the wanted algorithm", async () => {
    const leaf = await signServingCertificate({ signer, hostnames: ["a.b.svc"], now: t0 });
    const next = await createAuthority({ now: t0 });
    const secret = { annotations: {}, data: { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem } };
    const rsa = "rsa-2048" as const;
    assert.equal(keyWorthKeeping(secret, { keyAlgorithm: rsa, trusted: [next.cert, ca.cert] }), true);
    assert.equal(keyWorthKeeping(secret, { keyAlgorithm: rsa, trusted: [next.cert] }), false, "replaced");
    assert.equal(
      keyWorthKeeping(secret, { keyAlgorithm: "ecdsa-p256", trusted: [next.cert, ca.cert] }),
      false,
      "another algorithm wanted",
    );
    const mismatched = { ...secret, data: { ...secret.data, "tls.key": next.keyPem } };
    assert.equal(keyWorthKeeping(mismatched, { keyAlgorithm: rsa, trusted: [ca.cert] }), false);
  });
});

describe("bundles", () => {
  it("round-trip through PEM and drop expired and duplicate certificates", async () => {
    const short = await createAuthority({ now: t0, validityDays: 10 });
    const pem = encodeBundle([ca.cert, short.cert, ca.cert]);
    const decoded = decodeBundle(pem);
    assert.equal(decoded.length, 3);
    assert.equal(trustedAt(decoded, t0).length, 2);
    assert.deepEqual(
      trustedAt(decoded, new Date(t0.getTime() + 11 * DAY_MS)).map((c) => c.serialNumber),
      [ca.cert.serialNumber],
    );
  });
});

describe("when a serving certificate is re-issued", () => {
  const want = (now: Date, hostnames = ["web.shop.svc", "web.shop.svc.cluster.local"]) => ({
    hostnames,
    keyAlgorithm: "rsa-2048" as const,
    currentCa: ca.cert,
    now,
    refreshFraction: 1 / 3,
  });
  const secretFor = async (now: Date) => {
    const leaf = await signServingCertificate({
      signer,
      hostnames: servingHostnames("web", "shop", false),
      now,
    });
    return {
      annotations: { [annotations.expiry]: certOf(leaf).notAfter.toISOString() },
      data: { "tls.crt": leaf.certPem, "tls.key": leaf.keyPem },
    };
  };

  it("is not re-issued while current, and is once two thirds of its life have passed", async () => {
    const s = await secretFor(t0);
    assert.equal(await reissueReason(s, want(t0)), undefined);
    assert.equal(await reissueReason(s, want(new Date(t0.getTime() + 480 * DAY_MS))), undefined);
    assert.equal(await reissueReason(s, want(new Date(t0.getTime() + 490 * DAY_MS))), "close to expiry");
  });

  it("is re-issued for each broken or outdated part", async () => {
    const s = await secretFor(t0);
    const other = await createAuthority({ now: t0 });
    assert.equal(await reissueReason(undefined, want(t0)), "secret missing");
    assert.equal(
      await reissueReason({ ...s, data: { "tls.crt": s.data["tls.crt"] } }, want(t0)),
      "tls.crt or tls.key missing",
    );
    assert.equal(
      await reissueReason({ ...s, data: { ...s.data, "tls.crt": "garbage" } }, want(t0)),
      "tls.crt does not parse",
    );
    assert.equal(
      await reissueReason({ ...s, data: { ...s.data, "tls.key": other.keyPem } }, want(t0)),
      "tls.key does not match tls.crt",
    );
    assert.equal(
      await reissueReason(s, { ...want(t0), currentCa: other.cert }),
      "issued by a CA that is not the current one",
    );
    assert.equal(
      await reissueReason(s, want(t0, servingHostnames("web", "shop", true))),
      "hostnames changed",
    );
    assert.equal(
      await reissueReason(s, { ...want(t0), keyAlgorithm: "ecdsa-p256" }),
      "key algorithm is not ecdsa-p256",
    );
    assert.equal(await reissueReason({ ...s, annotations: {} }, want(t0)), "expiry annotation missing");
  });

  it("keys beside tls.crt and tls.key are extra (stripped), and do not by themselves ask for a new certificate", async () => {
    const s = await secretFor(t0);
    const cluttered = { ...s, data: { ...s.data, "ca.crt": "x", "tls.crt.bak": "y" } };
    assert.deepEqual(extraKeys(cluttered), ["ca.crt", "tls.crt.bak"]);
    assert.deepEqual(extraKeys(s), []);
    assert.equal(await reissueReason(cluttered, want(t0)), undefined);
  });
});

describe("KeyPool", () => {
  it("hands out pre-generated keys, each once, and refills to its size", async () => {
    let generated = 0;
    const pool = new KeyPool(3, "ecdsa-p256", 2, (a) => {
      generated++;
      return generateKeyPair(a);
    }).start();
    while (pool.stats().ready < 3) await new Promise((r) => setTimeout(r, 5));
    assert.equal(generated, 3);
    const taken = await Promise.all([pool.take(), pool.take(), pool.take(), pool.take()]);
    assert.equal(new Set(taken).size, 4);
    assert.deepEqual([pool.stats().hits, pool.stats().misses], [3, 1]);
    while (pool.stats().ready < 3) await new Promise((r) => setTimeout(r, 5));
    assert.equal(generated, 7);
    pool.close();
  });

  it("size 0 generates only when asked, never more than `parallel` at once", async () => {
    let running = 0;
    let most = 0;
    const pool = new KeyPool(0, "ecdsa-p256", 1, async (a) => {
      most = Math.max(most, ++running);
      try {
        return await generateKeyPair(a);
      } finally {
        running--;
      }
    }).start();
    assert.equal(pool.stats().ready, 0);
    const keys = await Promise.all(Array.from({ length: 5 }, () => pool.take()));
    assert.equal(new Set(keys).size, 5);
    assert.equal(most, 1);
    assert.equal(pool.stats().ready, 0);
    pool.close();
  });

  it("a failing generator stalls the background fill instead of spinning; take() still answers", async () => {
    let calls = 0;
    const pool = new KeyPool(2, "ecdsa-p256", 1, async (a) => {
      calls++;
      if (calls === 1) throw new Error("no entropy today");
      return generateKeyPair(a);
    }).start();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(calls, 1);
    const key = await pool.take();
    assert.ok(key.privateKey);
    pool.close();
  });

  it("callers waiting for keys are served round-robin by owner: a tenant draining the pool waits behind itself", async () => {
    const gates: Array<() => void> = [];
    const pool = new KeyPool(0, "ecdsa-p256", 1, async (a) => {
      await new Promise<void>((r) => gates.push(r));
      return generateKeyPair(a);
    });
    const order: string[] = [];
    const takes = [
      ...["noisy-1", "noisy-2", "noisy-3"].map((n) => pool.take("noisy").then(() => order.push(n))),
      pool.take("quiet").then(() => order.push("quiet")),
    ];
    for (let served = 0; served < 4; served++) {
      while (gates.length === 0) await new Promise((r) => setTimeout(r, 1));
      gates.shift()!();
      while (order.length <= served) await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(takes);
    assert.deepEqual(order, ["noisy-1", "quiet", "noisy-2", "noisy-3"]);
    pool.close();
  });
});

describe("leaf checks (the scan's fast path)", () => {
  it("key match: PKCS#8 and PKCS#1 RSA read from DER, EC through import; mismatched or corrupt keys fail", async () => {
    const ca = await createAuthority({ now: new Date() });
    const signer: Signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
    const rsa = await signServingCertificate({ signer, hostnames: ["a.ns.svc"], now: new Date() });
    const other = await signServingCertificate({ signer, hostnames: ["a.ns.svc"], now: new Date() });
    const ec = await signServingCertificate({
      signer,
      hostnames: ["b.ns.svc", "b.ns.svc.cluster.local"],
      now: new Date(),
      keyAlgorithm: "ecdsa-p256",
    });
    const leaf = readLeaf(rsa.certPem)!;
    assert.equal(leafKeyMatches(rsa.keyPem, leaf), true);
    assert.equal(leafKeyMatches(other.keyPem, leaf), false);
    const pkcs1 = createPrivateKey(rsa.keyPem).export({ type: "pkcs1", format: "pem" }).toString();
    assert.match(pkcs1, /BEGIN RSA PRIVATE KEY/);
    assert.equal(leafKeyMatches(pkcs1, leaf), true);
    const lines = rsa.keyPem.trim().split("\n");
    const truncated = [...lines.slice(0, -3), lines.at(-1)!].join("\n"); // a key cut short in transit
    assert.equal(leafKeyMatches(truncated, leaf), false);
    const swapped = rsa.keyPem.replace(lines[1]!, lines[1]!.slice(0, 20) + "A".repeat(lines[1]!.length - 20));
    assert.equal(leafKeyMatches(swapped, leaf), false); // the header and modulus mangled
    assert.equal(leafKeyMatches("not a key", leaf), false);
    const ecLeaf = readLeaf(ec.certPem)!;
    assert.equal(leafKeyMatches(ec.keyPem, ecLeaf), true);
    assert.equal(leafKeyMatches(rsa.keyPem, ecLeaf), false);
    assert.deepEqual(
      [ecLeaf.keyAlgorithm, leaf.keyAlgorithm, ecLeaf.dnsNames],
      ["ecdsa-p256", "rsa-2048", ["b.ns.svc", "b.ns.svc.cluster.local"]],
    );
    assert.equal(leaf.notAfter.getTime(), rsa.notAfter.getTime());
  });

  it("issued by: the signing CA yes, another CA with the same subject no; garbage does not parse", async () => {
    const now = new Date();
    const ca = await createAuthority({ now });
    const twin = await createAuthority({ now }); // same CN (same second), different key
    const signer: Signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
    const leaf = readLeaf((await signServingCertificate({ signer, hostnames: ["x.y.svc"], now })).certPem)!;
    assert.equal(leafIssuedBy(leaf, ca.cert), true);
    assert.equal(leafIssuedBy(leaf, twin.cert), false);
    assert.equal(readLeaf("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"), undefined);
    assert.equal(readLeaf(undefined), undefined);
  });
});
