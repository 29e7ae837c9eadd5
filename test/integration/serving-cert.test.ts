// "Annotate a Service, get a correct TLS Secret": the issue-serving-cert function against the real API server.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { notifyFunction, notifyOk } from "../support/object-events.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { handshake, openssl } from "../support/tls.ts";
import { kubectl } from "../support/kubectl.ts";
import { annotations } from "../../shared/names.ts";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let fn: RunningFunction;
let ns: string;
const CA_NS = "service-ca";

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, CA_NS);
  ns = await createNamespace(cluster.kc, "serving");
  fn = await startFunction("issue-serving-cert", {
    kubeconfig: await functionKubeconfig(cluster, "issue-serving-cert"),
    env: { LOG_LEVEL: "warn" },
  });
});
after(() => fn?.process.stop());

const decode = (s: k8s.V1Secret, key: string) => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");

async function annotatedService(
  name: string,
  secretName: string,
  extra: Partial<k8s.V1ServiceSpec> = {},
  more: Record<string, string> = {},
) {
  const svc = await core.createNamespacedService({
    namespace: ns,
    body: {
      metadata: { name, annotations: { [annotations.secretName]: secretName, ...more } },
      spec: { ports: [{ port: 443 }], ...extra },
    },
  });
  return svc;
}

const notify = (
  o: k8s.V1Service | k8s.V1Secret,
  kind: "Service" | "Secret",
  action: "add" | "update" | "delete" = "add",
  mode: "ref" | "resource" = "ref",
) => notifyOk(cluster.kc, fn, o, kind, { action, mode });

async function bundle(): Promise<string> {
  const cm = await core.readNamespacedConfigMap({ namespace: CA_NS, name: "signing-cabundle" });
  return cm.data!["ca-bundle.crt"]!;
}

describe("issue-serving-cert", () => {
  it("annotate a Service → a TLS Secret that openssl and a real handshake accept", async () => {
    const svc = await annotatedService("web", "web-tls");
    const result = await notify(svc, "Service");
    assert.equal(result.outcome, "issued");

    const secret = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    assert.equal(secret.type, "kubernetes.io/tls");
    const crt = decode(secret, "tls.crt");
    const key = decode(secret, "tls.key");
    const ca = await bundle();
    assert.match(
      await openssl(["verify", "-CAfile", "ca.crt", "tls.crt"], { "ca.crt": ca, "tls.crt": crt }),
      /tls.crt: OK/,
    );
    const text = await openssl(["x509", "-in", "tls.crt", "-noout", "-text"], { "tls.crt": crt });
    assert.match(text, new RegExp(`DNS:web\\.${ns}\\.svc, DNS:web\\.${ns}\\.svc\\.cluster\\.local\\s*\\n`));
    assert.match(text, new RegExp(`Subject: CN ?= ?web\\.${ns}\\.svc\\n`));
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    assert.match(text, /Public-Key: \(2048 bit\)/);
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(
      await openssl(["rsa", "-check", "-noout", "-in", "tls.key"], { "tls.key": key }),
      /RSA key ok/,
    );

    await handshake({ cert: crt, key, ca, servername: `web.${ns}.svc` });
    await handshake({ cert: crt, key, ca, servername: `web.${ns}.svc.cluster.local` });
    await assert.rejects(
      handshake({ cert: crt, key, ca, servername: `other.${ns}.svc` }),
      /altnames|Hostname/,
    );

    const a = secret.metadata!.annotations!;
    assert.equal(a[annotations.originName], "web");
    assert.equal(a[annotations.originUid], svc.metadata!.uid);
    assert.match(a[annotations.expiry]!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    assert.deepEqual(
      secret.metadata!.ownerReferences!.map((o) => [o.kind, o.name, o.uid]),
      [["Service", "web", svc.metadata!.uid]],
    );
    const after = await core.readNamespacedService({ namespace: ns, name: "web" });
    assert.match(after.metadata!.annotations![annotations.signedBy]!, /^service-ca-functions-signer@\d+$/);
  });

  it("a duplicate event costs one read and no write", async () => {
    const svc = await core.readNamespacedService({ namespace: ns, name: "web" });
    const before = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    for (const mode of ["ref", "resource"] as const) {
      const result = await notify(svc, "Service", "update", mode);
      assert.equal(result.outcome, "current");
    }
    const afterSecret = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    const afterSvc = await core.readNamespacedService({ namespace: ns, name: "web" });
    assert.equal(afterSecret.metadata!.resourceVersion, before.metadata!.resourceVersion);
    assert.equal(afterSvc.metadata!.resourceVersion, svc.metadata!.resourceVersion);
  });

  it("a headless Service → wildcard names, and a handshake to a pod name succeeds", async () => {
    const svc = await annotatedService("db", "db-tls", { clusterIP: "None" });
    await notify(svc, "Service", "add", "resource");
    const secret = await core.readNamespacedSecret({ namespace: ns, name: "db-tls" });
    const crt = decode(secret, "tls.crt");
    const text = await openssl(["x509", "-in", "tls.crt", "-noout", "-text"], { "tls.crt": crt });
    assert.match(
      text,
      new RegExp(
        `DNS:\\*\\.db\\.${ns}\\.svc, DNS:\\*\\.db\\.${ns}\\.svc\\.cluster\\.local, DNS:db\\.${ns}\\.svc, DNS:db\\.${ns}\\.svc\\.cluster\\.local`,
      ),
    );
    await handshake({
      cert: crt,
      key: decode(secret, "tls.key"),
      ca: await bundle(),
      servername: `pod-0.db.${ns}.svc`,
    });
  });

  it("ECDSA P-256 when the Service asks for it", async () => {
    const svc = await annotatedService("ec", "ec-tls", {}, { [annotations.keyAlgorithm]: "ecdsa-p256" });
    await notify(svc, "Service");
    const secret = await core.readNamespacedSecret({ namespace: ns, name: "ec-tls" });
    const text = await openssl(["x509", "-in", "tls.crt", "-noout", "-text"], {
      "tls.crt": decode(secret, "tls.crt"),
    });
    assert.match(text, /id-ecPublicKey[\s\S]*prime256v1|ASN1 OID: prime256v1/);
    await handshake({
      cert: decode(secret, "tls.crt"),
      key: decode(secret, "tls.key"),
      ca: await bundle(),
      servername: `ec.${ns}.svc`,
    });
  });

  /** The SANs openssl prints, and a verified handshake for each of them. */
  async function sansWithHandshakes(secretName: string): Promise<string[]> {
    const secret = await core.readNamespacedSecret({ namespace: ns, name: secretName });
    const crt = decode(secret, "tls.crt");
    const key = decode(secret, "tls.key");
    const ca = await bundle();
    const text = await openssl(["x509", "-in", "tls.crt", "-noout", "-ext", "subjectAltName"], {
      "tls.crt": crt,
    });
    const sans = [...text.matchAll(/DNS:([^,\s]+)/g)].map((m) => m[1]!);
    for (const servername of sans) await handshake({ cert: crt, key, ca, servername });
    return sans;
  }

  it("Alauda's annotation → the four DNS names that variant issues, each passing a handshake", async () => {
    const svc = await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: "shop", annotations: { [annotations.secretNameAlauda]: "shop-tls" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    assert.equal((await notify(svc, "Service")).outcome, "issued");
    assert.deepEqual(await sansWithHandshakes("shop-tls"), [
      "shop",
      `shop.${ns}`,
      `shop.${ns}.svc`,
      `shop.${ns}.svc.cluster.local`,
    ]);
    // The Secret answers to the Service: a Secret event finds it through the Alauda annotation too.
    const secret = await core.readNamespacedSecret({ namespace: ns, name: "shop-tls" });
    const again = await notify(secret, "Secret", "update");
    assert.deepEqual(
      (again.services as { service: string; outcome: string }[]).map((s) => [s.service, s.outcome]),
      [["shop", "current"]],
    );
  });

  it("the OpenShift annotation gets the short names only on request, and turning it on re-issues", async () => {
    const svc = await annotatedService("cart", "cart-tls");
    assert.equal((await notify(svc, "Service")).outcome, "issued");
    assert.deepEqual(await sansWithHandshakes("cart-tls"), [
      `cart.${ns}.svc`,
      `cart.${ns}.svc.cluster.local`,
    ]);
    await assert.rejects(async () => {
      const secret = await core.readNamespacedSecret({ namespace: ns, name: "cart-tls" });
      await handshake({
        cert: decode(secret, "tls.crt"),
        key: decode(secret, "tls.key"),
        ca: await bundle(),
        servername: "cart",
      });
    }, /altnames|Hostname/);

    const optedIn = await core.patchNamespacedService(
      {
        namespace: ns,
        name: "cart",
        body: { metadata: { annotations: { [annotations.shortNames]: "true" } } },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
    );
    const result = await notify(optedIn, "Service", "update");
    assert.deepEqual([result.outcome, result.reason], ["issued", "hostnames changed"]);
    assert.deepEqual(await sansWithHandshakes("cart-tls"), [
      "cart",
      `cart.${ns}`,
      `cart.${ns}.svc`,
      `cart.${ns}.svc.cluster.local`,
    ]);
  });

  it("a foreign Secret with that name is left byte-for-byte alone; the Service says why and an Event exists", async () => {
    const foreign = await core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "taken", annotations: { owner: "someone-else" } },
        type: "Opaque",
        data: { password: Buffer.from("hunter2").toString("base64") },
      },
    });
    const svc = await annotatedService("taken-svc", "taken");
    const result = await notify(svc, "Service");
    assert.equal(result.outcome, "foreign-secret");
    await notify(svc, "Service", "update"); // a repeat changes nothing either

    const still = await core.readNamespacedSecret({ namespace: ns, name: "taken" });
    assert.equal(still.metadata!.resourceVersion, foreign.metadata!.resourceVersion);
    assert.deepEqual(still.data, foreign.data);
    assert.deepEqual(still.metadata!.annotations, foreign.metadata!.annotations);

    const annotated = await core.readNamespacedService({ namespace: ns, name: "taken-svc" });
    assert.match(annotated.metadata!.annotations![annotations.error]!, /was not created for this Service/);
    assert.equal(annotated.metadata!.annotations![annotations.errorNum], "1");
    const events = JSON.parse(
      await kubectl(
        cluster,
        "get",
        "events",
        "-n",
        ns,
        "--field-selector",
        "involvedObject.name=taken-svc",
        "-o",
        "json",
      ),
    );
    assert.ok(
      events.items.some(
        (e: k8s.CoreV1Event) => e.reason === "ServingCertSecretConflict" && e.type === "Warning",
      ),
    );
  });

  it("a deleted Secret is re-created with a new serial", async () => {
    const old = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    await core.deleteNamespacedSecret({ namespace: ns, name: "web-tls" });
    const result = await notify(old, "Secret", "delete");
    assert.equal((result.services as Array<{ outcome: string }>)[0]!.outcome, "issued");
    const fresh = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    const serial = (s: k8s.V1Secret) =>
      openssl(["x509", "-in", "c", "-noout", "-serial"], { c: decode(s, "tls.crt") });
    assert.notEqual(await serial(fresh), await serial(old));
  });

  it("a forged 'Secret deleted' event while the Secret exists changes nothing", async () => {
    const s = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    const result = await notify(s, "Secret", "delete");
    assert.equal((result.services as Array<{ outcome: string }>)[0]!.outcome, "current");
    assert.equal(
      (await core.readNamespacedSecret({ namespace: ns, name: "web-tls" })).metadata!.resourceVersion,
      s.metadata!.resourceVersion,
    );
  });

  it("a corrupt tls.crt is re-issued", async () => {
    const s = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    s.data!["tls.crt"] = Buffer.from(
      "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n",
    ).toString("base64");
    const corrupted = await core.replaceNamespacedSecret({ namespace: ns, name: "web-tls", body: s });
    const result = await notify(corrupted, "Secret", "update");
    assert.equal(
      (result.services as Array<{ outcome: string; reason: string }>)[0]!.reason,
      "tls.crt does not parse",
    );
    const fixed = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    await handshake({
      cert: decode(fixed, "tls.crt"),
      key: decode(fixed, "tls.key"),
      ca: await bundle(),
      servername: `web.${ns}.svc`,
    });
  });

  it("an extra data key is removed without re-issuing", async () => {
    const s = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    s.data!["extra"] = Buffer.from("x").toString("base64");
    const withExtra = await core.replaceNamespacedSecret({ namespace: ns, name: "web-tls", body: s });
    const result = await notify(withExtra, "Secret", "update", "resource");
    assert.equal((result.services as Array<{ outcome: string }>)[0]!.outcome, "stripped");
    const cleaned = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    assert.deepEqual(Object.keys(cleaned.data!).sort(), ["tls.crt", "tls.key"]);
    assert.equal(cleaned.data!["tls.crt"], s.data!["tls.crt"]);
  });

  it("a Service that becomes headless gets wildcard names", async () => {
    await core.deleteNamespacedService({ namespace: ns, name: "db" });
    const svc = await annotatedService("db", "db-tls", { clusterIP: "None" });
    void svc;
    const plain = await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: "grow", annotations: { [annotations.secretName]: "grow-tls" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    await notify(plain, "Service");
    // clusterIP is immutable, so "becoming headless" means re-creating; the new Service has a new UID.
    await core.deleteNamespacedService({ namespace: ns, name: "grow" });
    const headless = await annotatedService("grow", "grow-tls", { clusterIP: "None" });
    const result = await notify(headless, "Service");
    // The old Secret belongs to the old Service (until garbage collection removes it): never taken over.
    assert.ok(["issued", "foreign-secret"].includes(result.outcome as string), JSON.stringify(result));
  });

  it("the Service delete garbage-collects its Secret (ownerReference)", async () => {
    await core.deleteNamespacedService({ namespace: ns, name: "ec" });
    const deadline = Date.now() + 30_000;
    for (;;) {
      const gone = await core.readNamespacedSecret({ namespace: ns, name: "ec-tls" }).then(
        () => false,
        () => true,
      );
      if (gone) break;
      assert.ok(Date.now() < deadline, "Secret still there 30 s after its Service was deleted");
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  it("two replicas receiving the same 50 events concurrently → 50 Secrets, one CA, each Secret written once", async () => {
    const caNs = await createNamespace(cluster.kc, "ca-race");
    const raceNs = await createNamespace(cluster.kc, "race");
    const env = { LOG_LEVEL: "warn", CA_NAMESPACE: caNs };
    const kubeconfig = await functionKubeconfig(cluster, "issue-serving-cert", caNs);
    const replicas = await Promise.all([
      startFunction("issue-serving-cert", { kubeconfig, env }),
      startFunction("issue-serving-cert", { kubeconfig, env }),
    ]);
    try {
      const services = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          core.createNamespacedService({
            namespace: raceNs,
            body: {
              metadata: { name: `svc-${i}`, annotations: { [annotations.secretName]: `svc-${i}-tls` } },
              spec: { ports: [{ port: 443 }] },
            },
          }),
        ),
      );
      const deliveries = services.flatMap((svc) =>
        replicas.map((r) => notifyFunction(cluster.kc, r, svc, "Service")),
      );
      const results = await Promise.all(deliveries);
      assert.deepEqual(
        results.filter((r) => r.status !== 200),
        [],
      );

      const secrets = (await core.listNamespacedSecret({ namespace: raceNs })).items.filter(
        (s) => s.type === "kubernetes.io/tls",
      );
      assert.equal(secrets.length, 50);
      const caSecrets = (await core.listNamespacedSecret({ namespace: caNs })).items;
      assert.equal(caSecrets.length, 1, "exactly one CA");
      const ca = (await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" })).data![
        "ca-bundle.crt"
      ]!;
      for (const s of secrets.slice(0, 5)) {
        assert.match(
          await openssl(["verify", "-CAfile", "ca", "crt"], { ca, crt: decode(s, "tls.crt") }),
          /OK/,
        );
      }
      const writes = await secretWrites(raceNs);
      for (const s of secrets)
        assert.equal(writes.get(s.metadata!.name!) ?? 0, 1, `${s.metadata!.name} written once`);
    } finally {
      await Promise.all(replicas.map((r) => r.process.stop()));
    }
  });
});

/** Successful creates/updates/patches of Secrets in `namespace`, per Secret name, from the API server's audit log. */
async function secretWrites(namespace: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const lines = (await readFile(cluster.auditLog, "utf8")).split("\n").filter(Boolean);
  for (const line of lines) {
    const e = JSON.parse(line);
    const ref = e.objectRef ?? {};
    if (e.stage !== "ResponseComplete" || ref.resource !== "secrets" || ref.namespace !== namespace) continue;
    if (!["create", "update", "patch"].includes(e.verb) || e.responseStatus?.code >= 300) continue;
    const name = ref.name ?? e.responseObject?.metadata?.name ?? "?";
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}
