// shared/pki/csr.ts and the signer's pure rules: which requests can be signed, and what the certificate says.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { x509 } from "../../shared/pki/x509.ts";
import {
  createAuthority,
  DAY_MS,
  dnsNames,
  generateKeyPair,
  importPrivateKeyPem,
  leafIssuedBy,
  readLeaf,
  rsaSigning,
  type Signer,
} from "../../shared/pki/index.ts";
import {
  CSR_MIN_SECONDS,
  csrLifetimeSeconds,
  judgeServingRequest,
  signServingRequest,
  type CsrVerdict,
  type ServingRequest,
} from "../../shared/pki/csr.ts";
import { csrCondition, csrState, serviceAccountOf, serviceClaimed } from "../../shared/csr-signer/policy.ts";
import { openssl } from "../support/tls.ts";

const t0 = new Date("2026-01-01T00:00:00Z");
const serving = ["digital signature", "key encipherment", "server auth"];
const ecdsaSigning = { name: "ECDSA", hash: "SHA-256" } as EcdsaParams;
let signer: Signer;
let rsaKeys: CryptoKeyPair;

before(async () => {
  const ca = await createAuthority({ now: t0 });
  signer = { cert: ca.cert, key: await importPrivateKeyPem(ca.keyPem) };
  rsaKeys = await generateKeyPair("rsa-2048");
});

type GeneralName = { type: "dns" | "ip" | "email" | "url"; value: string };
const dns = (...values: string[]): GeneralName[] => values.map((value) => ({ type: "dns", value }));

async function csrPem(
  opts: { cn?: string; names?: GeneralName[]; keys?: CryptoKeyPair; signingAlgorithm?: Algorithm } = {},
): Promise<string> {
  const names = opts.names ?? dns("web.shop.svc");
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    ...(opts.cn === undefined ? {} : { name: `CN=${opts.cn}` }),
    keys: opts.keys ?? rsaKeys,
    signingAlgorithm: opts.signingAlgorithm ?? rsaSigning,
    extensions: names.length ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return csr.toString("pem");
}

/** A request made the way a user makes one: `openssl req` with a key of the given kind. */
async function opensslCsr(
  keyType: "rsa" | "ec" | "ed25519",
  opts: { bits?: number; san?: string; subj?: string } = {},
) {
  const key =
    keyType === "rsa"
      ? generateKeyPairSync("rsa", { modulusLength: opts.bits ?? 2048 })
      : keyType === "ec"
        ? generateKeyPairSync("ec", { namedCurve: "P-256" })
        : generateKeyPairSync("ed25519");
  const pem = key.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  return openssl(
    [
      "req",
      "-new",
      "-key",
      "k.pem",
      "-subj",
      opts.subj ?? "/",
      "-addext",
      `subjectAltName=${opts.san ?? "DNS:web.shop.svc"}`,
    ],
    { "k.pem": pem },
  );
}

function accepted(v: CsrVerdict): ServingRequest {
  if (!v.ok) assert.fail(`expected the request to be accepted: ${v.reason}: ${v.message}`);
  return v.request;
}

function refused(v: CsrVerdict, reason: string, message: RegExp) {
  if (v.ok) assert.fail(`expected the request to be refused with ${reason}`);
  assert.equal(v.reason, reason);
  assert.match(v.message, message);
}

/** The leaf as a certificate object, to read its fields. */
const parsed = (leaf: { der: Uint8Array<ArrayBuffer> }) => new x509.X509Certificate(leaf.der);

describe("judging a CSR", () => {
  it("accepts an RSA request for DNS names: sorted, without duplicates, CN from the subject", async () => {
    const pem = await csrPem({
      cn: "web.shop.svc",
      names: dns("web.shop.svc.cluster.local", "web.shop.svc", "web.shop.svc"),
    });
    const r = accepted(await judgeServingRequest(pem, serving));
    assert.deepEqual(r.dnsNames, ["web.shop.svc", "web.shop.svc.cluster.local"]);
    assert.equal(r.commonName, "web.shop.svc");
    assert.equal(r.key, "RSA-2048");
    assert.deepEqual(r.usages, serving);
  });

  it("accepts openssl req requests (RSA, ECDSA P-256); without a CN the first name is the CN", async () => {
    const ec = accepted(
      await judgeServingRequest(await opensslCsr("ec", { san: "DNS:b.shop.svc,DNS:a.shop.svc" }), [
        "server auth",
      ]),
    );
    assert.equal(ec.commonName, "a.shop.svc");
    assert.equal(ec.key, "ECDSA P-256");
    const rsa = accepted(
      await judgeServingRequest(await opensslCsr("rsa", { subj: "/CN=web.shop.svc/O=shop" }), serving),
    );
    assert.equal(rsa.commonName, "web.shop.svc");
  });

  it("refuses what is not one PKCS#10 request", async () => {
    const pem = await csrPem();
    refused(await judgeServingRequest("", serving), "InvalidRequest", /exactly one PEM block .* found 0/);
    refused(await judgeServingRequest(pem + pem, serving), "InvalidRequest", /found 2/);
    refused(
      await judgeServingRequest(signer.cert.toString("pem"), serving),
      "InvalidRequest",
      /CERTIFICATE REQUEST, found 0/,
    );
    const garbage =
      "-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgcmVxdWVzdA==\n-----END CERTIFICATE REQUEST-----\n";
    refused(await judgeServingRequest(garbage, serving), "InvalidRequest", /not a valid PKCS#10 request/);
  });

  it("refuses a request whose signature does not verify (no proof of the private key)", async () => {
    const csr = new x509.Pkcs10CertificateRequest(await csrPem());
    const der = Buffer.from(csr.rawData);
    der[der.length - 10]! ^= 0x01; // inside the signature
    const tampered = x509.PemConverter.encode(der, "CERTIFICATE REQUEST");
    refused(await judgeServingRequest(tampered, serving), "SignatureInvalid", /does not verify/);
  });

  it("refuses keys too weak or of an unsupported kind", async () => {
    refused(
      await judgeServingRequest(await opensslCsr("rsa", { bits: 1024 }), serving),
      "UnsupportedKey",
      /RSA-1024 keys are not supported/,
    );
    refused(await judgeServingRequest(await opensslCsr("ed25519"), serving), "UnsupportedKey", /Ed25519/);
  });

  it("refuses usages beyond server auth, digital signature and key encipherment, and a missing server auth", async () => {
    const pem = await csrPem();
    refused(
      await judgeServingRequest(pem, ["server auth", "client auth"]),
      "UnsupportedUsages",
      /not allowed: "client auth"/,
    );
    refused(
      await judgeServingRequest(pem, ["digital signature"]),
      "UnsupportedUsages",
      /must include "server auth"/,
    );
    refused(await judgeServingRequest(pem, []), "UnsupportedUsages", /must include "server auth"/);
  });

  it("refuses names that are not DNS names, no names, and a CN that is not one of them", async () => {
    refused(
      await judgeServingRequest(
        await csrPem({ names: [...dns("web.shop.svc"), { type: "ip", value: "10.0.0.1" }] }),
        serving,
      ),
      "UnsupportedNames",
      /only DNS names .* not ip:10\.0\.0\.1/,
    );
    refused(
      await judgeServingRequest(await opensslCsr("rsa", { san: "DNS:web.shop.svc,email:a@b.c" }), serving),
      "UnsupportedNames",
      /not email:a@b\.c/,
    );
    refused(
      await judgeServingRequest(await csrPem({ cn: "web.shop.svc", names: [] }), serving),
      "UnsupportedNames",
      /no DNS name/,
    );
    refused(
      await judgeServingRequest(await csrPem({ cn: "admin", names: dns("web.shop.svc") }), serving),
      "UnsupportedNames",
      /CN admin is not one of/,
    );
    refused(
      await judgeServingRequest(await csrPem({ names: dns("Web.shop.svc") }), serving),
      "UnsupportedNames",
      /not valid lowercase DNS names: Web/,
    );
  });
});

describe("signing a CSR", () => {
  it("certifies the requester's own key for exactly its names, under the CA, for the granted lifetime", async () => {
    const keys = await generateKeyPair("ecdsa-p256");
    const pem = await csrPem({
      names: dns("web.shop.svc", "web.shop.svc.cluster.local"),
      keys,
      signingAlgorithm: ecdsaSigning,
    });
    const request = accepted(await judgeServingRequest(pem, serving));
    const cert = parsed(await signServingRequest({ signer, request, now: t0, lifetimeSeconds: 3600 }));
    assert.ok(leafIssuedBy(readLeaf(cert.toString("pem"))!, signer.cert));
    assert.deepEqual(dnsNames(cert), ["web.shop.svc", "web.shop.svc.cluster.local"]);
    assert.equal(cert.subject, "CN=web.shop.svc");
    assert.deepEqual(
      Buffer.from(cert.publicKey.rawData),
      Buffer.from(await crypto.subtle.exportKey("spki", keys.publicKey)),
    );
    assert.equal(cert.notAfter.getTime() - t0.getTime(), 3600 * 1000);
    assert.ok(cert.notBefore <= t0);
    assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.ca, false);
    assert.deepEqual(
      [...(cert.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? [])],
      [x509.ExtendedKeyUsage.serverAuth],
    );
    assert.equal(
      cert.getExtension(x509.KeyUsagesExtension)?.usages,
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
  });

  it("openssl verifies it against the CA and shows the names", async () => {
    const request = accepted(
      await judgeServingRequest(await opensslCsr("rsa", { san: "DNS:web.shop.svc" }), serving),
    );
    const leaf = await signServingRequest({ signer, request, now: t0, lifetimeSeconds: 600 });
    const files = { "ca.crt": signer.cert.toString("pem"), "leaf.crt": leaf.pem };
    // -attime: the CA and the leaf were made for t0, not for the real time of this test.
    const at = String(Math.floor(t0.getTime() / 1000) + 60);
    assert.match(
      await openssl(["verify", "-attime", at, "-CAfile", "ca.crt", "leaf.crt"], files),
      /leaf.crt: OK/,
    );
    assert.match(
      await openssl(["x509", "-noout", "-text", "-in", "leaf.crt"], files),
      /DNS:web\.shop\.svc\n/,
    );
  });

  it("carries only the key usages asked for (none: no KeyUsage extension)", async () => {
    const request = accepted(await judgeServingRequest(await csrPem(), ["server auth"]));
    const cert = parsed(await signServingRequest({ signer, request, now: t0, lifetimeSeconds: 600 }));
    assert.equal(cert.getExtension(x509.KeyUsagesExtension), null);
  });

  it("never outlives the CA", async () => {
    const request = accepted(await judgeServingRequest(await csrPem(), serving));
    const cert = parsed(
      await signServingRequest({ signer, request, now: t0, lifetimeSeconds: 3650 * DAY_MS }),
    );
    assert.equal(cert.notAfter.getTime(), signer.cert.notAfter.getTime());
  });

  it("grants spec.expirationSeconds within [600 s, the configured maximum]; none asked means the maximum", () => {
    const max = 730 * 24 * 3600;
    assert.equal(csrLifetimeSeconds(undefined, max), max);
    assert.equal(csrLifetimeSeconds(3600, max), 3600);
    assert.equal(csrLifetimeSeconds(10 * max, max), max);
    assert.equal(csrLifetimeSeconds(60, max), CSR_MIN_SECONDS);
  });
});

describe("the signer's rules", () => {
  it("knows a ServiceAccount requester and its namespace; anyone else is not one", () => {
    assert.deepEqual(serviceAccountOf("system:serviceaccount:shop:web"), { namespace: "shop", name: "web" });
    assert.equal(serviceAccountOf("alice"), undefined);
    assert.equal(serviceAccountOf("system:node:worker-1"), undefined);
    assert.equal(serviceAccountOf("system:serviceaccount:shop"), undefined);
    assert.equal(serviceAccountOf(undefined), undefined);
  });

  it("maps the four claimable name forms of a Service to it, in the requester's namespace only", () => {
    for (const n of [
      "web.shop.svc",
      "web.shop.svc.cluster.local",
      "*.web.shop.svc",
      "*.web.shop.svc.cluster.local",
    ])
      assert.equal(serviceClaimed(n, "shop"), "web", n);
    for (const n of [
      "web",
      "web.shop",
      "web.other.svc",
      "web.other",
      "web.shop.svc.example.com",
      "a.web.shop.svc",
      "*.*.web.shop.svc",
      "shop.svc",
      "*.shop.svc",
      "1web.shop.svc",
    ])
      assert.equal(serviceClaimed(n, "shop"), undefined, n);
  });

  it("reads where a CSR stands from its status", () => {
    const now = new Date();
    const csr = (status: object) => ({ spec: { request: "", signerName: "x" }, status }) as never;
    assert.equal(csrState(csr({})), "pending");
    assert.equal(csrState(csr({ conditions: [csrCondition("Approved", "A", "m", now)] })), "approved");
    assert.equal(csrState(csr({ conditions: [csrCondition("Denied", "D", "m", now)] })), "denied");
    assert.equal(
      csrState(
        csr({ conditions: [csrCondition("Approved", "A", "m", now), csrCondition("Failed", "F", "m", now)] }),
      ),
      "failed",
    );
    assert.equal(
      csrState(csr({ certificate: "eA==", conditions: [csrCondition("Approved", "A", "m", now)] })),
      "signed",
    );
  });
});
