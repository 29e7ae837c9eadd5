// CA rotation with no outage: every {old, new} certificate × {old, new} bundle pair still handshakes,
// the admin endpoint is authenticated and authorized by the API server, and racing rotations make one CA.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { notifyOk } from "../support/object-events.ts";
import { createAnnotatedService } from "../support/services.ts";
import { createNamespace } from "../support/namespaces.ts";
import { handshake, openssl, overlapPairs } from "../support/tls.ts";
import { kubectl } from "../support/kubectl.ts";
import { annotations } from "../../shared/names.ts";
import { decodeBundle } from "../../shared/pki/index.ts";
import { rotatorRules, tokenWithRules } from "../../dev/tokens.ts";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let caNs: string;
let ns: string;
const fns: Record<string, RunningFunction> = {};

before(async () => {
  // expiry-scan here scans the whole cluster: it gets one of its own.
  cluster = await testCluster({ isolated: true });
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  caNs = await createNamespace(cluster.kc, "ca-rotation");
  ns = await createNamespace(cluster.kc, "rotation");
  const env = { LOG_LEVEL: "warn", CA_NAMESPACE: caNs };
  for (const name of ["issue-serving-cert", "rotate-ca", "expiry-scan", "inject-configmap"]) {
    fns[name] = await startFunction(name, { kubeconfig: await functionKubeconfig(cluster, name, caNs), env });
  }
});
after(() => Promise.all(Object.values(fns).map((f) => f.process.stop())));

/** Function `fn`'s source event about `o`, which it must answer with 200. */
const notify = (
  fn: string,
  o: { metadata?: k8s.V1ObjectMeta },
  kind: string,
  action: "add" | "update" = "add",
) => notifyOk(cluster.kc, fns[fn]!, o, kind, { action });
const decode = (s: k8s.V1Secret, key: string) => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");
const bundle = async () =>
  (await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" })).data!["ca-bundle.crt"]!;

const tokenFor = (sa: string, rules: k8s.V1PolicyRule[] | undefined) =>
  tokenWithRules(cluster.kc, caNs, sa, rules);

const rotate = (token: string | undefined, body: unknown = { reason: "test" }) =>
  fetch(`${fns["rotate-ca"]!.url}/rotate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });

describe("rotate-ca", () => {
  it("keeps every {old, new} certificate × {old, new} bundle pair working through a forced rotation", async () => {
    const svc = await createAnnotatedService(core, ns, "api", "api-tls");
    await notify("issue-serving-cert", svc, "Service");
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: { name: "trust", annotations: { "service.beta.openshift.io/inject-cabundle": "true" } },
      },
    });
    await notify("inject-configmap", cm, "ConfigMap");

    const oldSecret = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    const oldBundle = await bundle();
    assert.equal(decodeBundle(oldBundle).length, 1);

    // Not due on the daily ping: a fresh CA has 790 days.
    const ping = await deliver(
      fns["rotate-ca"]!.url,
      pingEvent(caNs, "rotate-ca-daily"),
      await sourceToken(cluster.kc, "rotate-ca"),
    );
    assert.equal(ping.json.outcome, "not-due");

    const admin = await tokenFor("ca-admin", rotatorRules());
    const res = await rotate(admin, { reason: "test the overlap" });
    assert.equal(res.status, 200, await res.clone().text());
    const body = (await res.json()) as { outcome: string; previousTrustedUntil: string };
    assert.equal(body.outcome, "rotated");

    const newBundle = await bundle();
    assert.equal(decodeBundle(newBundle).length, 2, "the new CA and, until it expires, the previous one");
    // The published bundle changed: the fan-out (expiry-scan re-issues, injectors re-inject), and
    // issue-serving-cert reads the CA it signs from again (its ca-bundle-to-issue-serving-cert source).
    const bundleCm = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    await notify("expiry-scan", bundleCm, "ConfigMap", "update");
    await notify("inject-configmap", bundleCm, "ConfigMap", "update");
    await notify("issue-serving-cert", bundleCm, "ConfigMap", "update");
    assert.equal(
      (await core.readNamespacedConfigMap({ namespace: ns, name: "trust" })).data!["service-ca.crt"],
      newBundle,
    );

    const newSecret = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    assert.notEqual(decode(newSecret, "tls.crt"), decode(oldSecret, "tls.crt"), "re-issued by the new CA");
    assert.equal(
      decode(newSecret, "tls.key"),
      decode(oldSecret, "tls.key"),
      "a routine rotation re-signs the key the Secret has (SERVING_CERT_KEEP_KEY_ON_ROTATION)",
    );
    assert.equal(
      decodeBundle(decode(newSecret, "tls.crt")).length,
      2,
      "leaf + the new CA cross-signed by the old key",
    );
    const signedBy = (await core.readNamespacedService({ namespace: ns, name: "api" })).metadata!
      .annotations![annotations.signedBy];
    assert.notEqual(signedBy, svc.metadata?.annotations?.[annotations.signedBy]);

    const servername = `api.${ns}.svc`;
    for (const p of overlapPairs({ old: oldSecret, new: newSecret }, { old: oldBundle, new: newBundle })) {
      const s = p.certificate;
      await assert.doesNotReject(
        handshake({ cert: decode(s, "tls.crt"), key: decode(s, "tls.key"), ca: p.bundlePem, servername }),
        `${p.cert} certificate with the ${p.bundle} bundle`,
      );
    }
    // openssl agrees: the new leaf verifies against the old bundle through the served intermediate.
    const [leaf, bridge] = decodeBundle(decode(newSecret, "tls.crt"));
    assert.match(
      await openssl(["verify", "-CAfile", "old.pem", "-untrusted", "bridge.pem", "leaf.pem"], {
        "old.pem": oldBundle,
        "bridge.pem": bridge!.toString("pem"),
        "leaf.pem": leaf!.toString("pem"),
      }),
      /leaf.pem: OK/,
    );

    const events = JSON.parse(await kubectl(cluster, "get", "events", "-n", caNs, "-o", "json"));
    const rotated = events.items.find((e: k8s.CoreV1Event) => e.reason === "ServiceCARotated");
    assert.ok(rotated, "a ServiceCARotated event");
    assert.match(rotated.message, /previous CA trusted until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);

    const metrics = await (await fetch(`${fns["rotate-ca"]!.url}/metrics`)).text();
    const notAfter = decodeBundle(newBundle)[0]!.notAfter.getTime() / 1000;
    assert.match(
      metrics,
      new RegExp(`service_ca_expiry_time_seconds\\{function="rotate-ca"\\} ${Math.floor(notAfter)}`),
    );
  });

  it("refuses callers without a token or without the right to update the CA Secret", async () => {
    assert.equal((await rotate(undefined)).status, 401);
    const bad = await rotate("not-a-token");
    assert.equal(bad.status, 401);
    // Generic: the API server's reason (which ServiceAccount, which audience) stays in rotate-ca's log.
    assert.deepEqual(
      ((await bad.json()) as { error: { message: string } }).error.message,
      "the bearer token was not accepted",
    );
    const nobody = await tokenFor("ca-nobody", undefined);
    const res = await rotate(nobody);
    assert.equal(res.status, 403);
    assert.match(
      ((await res.json()) as { error: { message: string } }).error.message,
      /may not update secrets\/signing-key/,
    );
    assert.equal((await rotate(nobody, { reason: "" })).status, 400);
  });

  it("two rotations racing produce one new CA", async () => {
    const admin = await tokenFor("ca-racer", rotatorRules());
    const before = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    const [a, b] = await Promise.all([
      rotate(admin, { reason: "race a" }),
      rotate(admin, { reason: "race b" }),
    ]);
    const outcomes = [
      ((await a.json()) as { outcome: string }).outcome,
      ((await b.json()) as { outcome: string }).outcome,
    ].sort();
    const after = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    const writes = Number(after.metadata!.resourceVersion) > Number(before.metadata!.resourceVersion);
    assert.ok(writes);
    // Exactly one write won; the loser reports the winner's CA instead of making a second one.
    assert.deepEqual(outcomes, ["rotated", "rotated-concurrently"]);
    const bundleCerts = decodeBundle(decode(after, "ca-bundle.crt"));
    assert.equal(bundleCerts.length, 2);
    assert.equal(
      decode(after, "previous-ca.crt"),
      decodeBundle(decode(before, "tls.crt"))[0]!.toString("pem") + "\n",
    );
  });
});

describe("rotate-ca: replace, status, dry run", () => {
  it("GET /status reports the CAs; a dry run changes nothing", async () => {
    const admin = await tokenFor("ca-status", rotatorRules());
    const status = await fetch(`${fns["rotate-ca"]!.url}/status`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(status.status, 200);
    const body = (await status.json()) as { current: { ca: string }; trusted: unknown[] };
    assert.match(body.current.ca, /^service-ca-functions-signer@\d+$/);
    assert.ok(body.trusted.length >= 1);
    assert.equal((await fetch(`${fns["rotate-ca"]!.url}/status`)).status, 401);

    const before = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    const dry = await rotate(admin, { reason: "what if", mode: "replace", dryRun: true });
    assert.equal(dry.status, 200);
    assert.equal(((await dry.json()) as { outcome: string }).outcome, "dry-run");
    const after = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    assert.equal(after.metadata!.resourceVersion, before.metadata!.resourceVersion);
    assert.equal((await rotate(admin, { reason: "x", mode: "sideways" })).status, 400);
  });

  it("replace: the old CA is trusted no more at once, and every Secret and bundle is new", async () => {
    const oldSecret = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    const oldBundle = await bundle();
    const admin = await tokenFor("ca-replacer", rotatorRules());
    const res = await rotate(admin, { reason: "key compromise", mode: "replace" });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { outcome: string; previousTrustedUntil: string | null };
    assert.equal(body.outcome, "rotated");
    assert.equal(body.previousTrustedUntil, null);
    const newBundle = await bundle();
    assert.equal(decodeBundle(newBundle).length, 1, "only the new CA");
    assert.notEqual(newBundle, oldBundle);

    const servername = `api.${ns}.svc`;
    await assert.rejects(
      handshake({
        cert: decode(oldSecret, "tls.crt"),
        key: decode(oldSecret, "tls.key"),
        ca: newBundle,
        servername,
      }),
      "an old-CA certificate fails against the new bundle",
    );
    const bundleCm = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    for (const fn of ["expiry-scan", "inject-configmap", "issue-serving-cert"]) {
      await notify(fn, bundleCm, "ConfigMap", "update");
    }
    const newSecret = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    assert.notEqual(newSecret.data!["tls.crt"], oldSecret.data!["tls.crt"]);
    assert.notEqual(
      newSecret.data!["tls.key"],
      oldSecret.data!["tls.key"],
      "a CA trusted no more: a fresh key too",
    );
    assert.equal(decodeBundle(decode(newSecret, "tls.crt")).length, 1, "no bridge after a replace");
    await handshake({
      cert: decode(newSecret, "tls.crt"),
      key: decode(newSecret, "tls.key"),
      ca: newBundle,
      servername,
    });
    assert.equal(
      (await core.readNamespacedConfigMap({ namespace: ns, name: "trust" })).data!["service-ca.crt"],
      newBundle,
    );
  });
});

describe("expiry-scan", () => {
  it("repairs a world where events were dropped, with a summary whose counts match", async () => {
    const repairNs = await createNamespace(cluster.kc, "repair");
    const mk = (name: string, secretName = `${name}-tls`) =>
      core.createNamespacedService({
        namespace: repairNs,
        body: {
          metadata: { name, annotations: { [annotations.secretName]: secretName } },
          spec: { ports: [{ port: 443 }] },
        },
      });
    // Issued while events still flowed...
    for (const name of ["broken", "extra", "fine"]) {
      const svc = await mk(name);
      await notify("issue-serving-cert", svc, "Service");
    }
    // ...then every event lost: new Services, a corrupted certificate, an extra key, an edited bundle.
    for (const name of ["missed-1", "missed-2"]) await mk(name);
    await mk("twin", "fine-tls"); // a second Service naming a Secret that is another's: refused, never issued
    const broken = await core.readNamespacedSecret({ namespace: repairNs, name: "broken-tls" });
    broken.data!["tls.crt"] = Buffer.from("garbage").toString("base64");
    await core.replaceNamespacedSecret({ namespace: repairNs, name: "broken-tls", body: broken });
    const extra = await core.readNamespacedSecret({ namespace: repairNs, name: "extra-tls" });
    extra.data!["debug"] = Buffer.from("x").toString("base64");
    await core.replaceNamespacedSecret({ namespace: repairNs, name: "extra-tls", body: extra });
    const published = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    const goodBundle = published.data!["ca-bundle.crt"]!;
    published.data!["ca-bundle.crt"] = "edited by hand\n";
    await core.replaceNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle", body: published });
    const trust = await core.readNamespacedConfigMap({ namespace: ns, name: "trust" });
    trust.data!["service-ca.crt"] = "stale\n";
    await core.replaceNamespacedConfigMap({ namespace: ns, name: "trust", body: trust });
    const fineRv = (await core.readNamespacedSecret({ namespace: repairNs, name: "fine-tls" })).metadata!
      .resourceVersion;

    const res = await deliver(
      fns["expiry-scan"]!.url,
      pingEvent(caNs, "expiry-scan-hourly"),
      await sourceToken(cluster.kc, "expiry-scan"),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const summary = res.json as {
      bundleRepublished: boolean;
      pages: number;
      outcomes: Record<string, number>;
      injected: Record<string, { injected: number }>;
    };
    assert.equal(summary.bundleRepublished, true);
    assert.equal(await bundle(), goodBundle);
    // Counted over the whole cluster: this namespace's 5 plus whatever other tests left, all current.
    assert.equal(summary.outcomes.issued, 3, JSON.stringify(summary));
    assert.equal(summary.outcomes.stripped, 1, JSON.stringify(summary));
    assert.equal(summary.outcomes.failed ?? 0, 0);
    assert.ok((summary.outcomes["foreign-secret"] ?? 0) >= 1, JSON.stringify(summary));
    const twin = await core.readNamespacedService({ namespace: repairNs, name: "twin" });
    assert.match(twin.metadata!.annotations![annotations.error] ?? "", /was not created for this Service/);
    assert.equal(summary.injected.ConfigMap!.injected, 1, "the edited injected bundle");
    assert.equal(
      (await core.readNamespacedConfigMap({ namespace: ns, name: "trust" })).data!["service-ca.crt"],
      goodBundle,
    );
    for (const name of ["broken", "extra", "fine", "missed-1", "missed-2"]) {
      const s = await core.readNamespacedSecret({ namespace: repairNs, name: `${name}-tls` });
      assert.deepEqual(Object.keys(s.data!).sort(), ["tls.crt", "tls.key"]);
      await handshake({
        cert: decode(s, "tls.crt"),
        key: decode(s, "tls.key"),
        ca: goodBundle,
        servername: `${name}.${repairNs}.svc`,
      });
    }
    assert.equal(
      (await core.readNamespacedSecret({ namespace: repairNs, name: "fine-tls" })).metadata!.resourceVersion,
      fineRv,
      "a current Secret is not written",
    );

    // A second scan finds nothing to do.
    const again = (
      await deliver(
        fns["expiry-scan"]!.url,
        pingEvent(caNs, "expiry-scan-hourly"),
        await sourceToken(cluster.kc, "expiry-scan"),
      )
    ).json as {
      bundleRepublished: boolean;
      outcomes: Record<string, number>;
    };
    assert.equal(again.bundleRepublished, false);
    assert.equal(again.outcomes.issued ?? 0, 0);
    assert.equal(again.outcomes.stripped ?? 0, 0);
  });

  it("a CA Secret deleted by hand acts like replace: a new CA, and everything re-issued", async () => {
    const before = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    const oldBundle = await bundle();
    await core.deleteNamespacedSecret({ namespace: caNs, name: "signing-key" });
    const res = await deliver(
      fns["expiry-scan"]!.url,
      pingEvent(caNs, "expiry-scan-hourly"),
      await sourceToken(cluster.kc, "expiry-scan"),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const newBundle = await bundle();
    assert.notEqual(newBundle, oldBundle);
    assert.equal(decodeBundle(newBundle).length, 1);
    // As its source would: the bundle the scan republished reaches issue-serving-cert.
    const bundleCm = await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" });
    await notify("issue-serving-cert", bundleCm, "ConfigMap", "update");
    const after = await core.readNamespacedSecret({ namespace: ns, name: "api-tls" });
    assert.notEqual(after.data!["tls.crt"], before.data!["tls.crt"]);
    await handshake({
      cert: decode(after, "tls.crt"),
      key: decode(after, "tls.key"),
      ca: newBundle,
      servername: `api.${ns}.svc`,
    });
  });
});
