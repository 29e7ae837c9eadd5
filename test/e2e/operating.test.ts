// Operating the running system as a platform team does: every function's metrics checked against the truth (the
// CA Secret, the API server's audit log, the scan's own answer), and `kubectl service-ca` (the built plugin, run
// as a process with a user's kubeconfig) for a healthy system, a foreign Secret in the way, an expired certificate,
// a user without rights, a dry run that writes nothing and a rotation.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem, SYSTEM_NAMESPACE, type LocalSystem } from "../../dev/local-system/local-system.ts";
import { deliver, pingEvent, sourceToken } from "../../dev/events.ts";
import { waitFor } from "../../dev/processes.ts";
import { buildPlugin } from "../../scripts/build-plugin.ts";
import { scrape } from "../../dev/metrics.ts";
import { auditMark, auditSince, serviceAccountUser, succeeded, writesBy } from "../../dev/audit.ts";
import { rotatorRules, tokenWithRules } from "../../dev/tokens.ts";
import { annotations } from "../../shared/names.ts";
import { caKeys } from "../../shared/names.ts";
import {
  createAuthority,
  decodeBundle,
  importPrivateKeyPem,
  signServingCertificate,
  DAY_MS,
} from "../../shared/pki/index.ts";

const NS = "ops";
/** What an injector writes a bundle into (the published bundle ConfigMap aside). */
const INJECTABLE = new Set([
  "configmaps",
  "apiservices",
  "customresourcedefinitions",
  "mutatingwebhookconfigurations",
  "validatingwebhookconfigurations",
]);
let system: LocalSystem;
let core: k8s.CoreV1Api;
let work: string;
let plugin: string;

const audited = () => ({ auditLog: system.plane.auditLog, kc: system.kc });
const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => Buffer.from(s ?? "", "base64").toString("utf8");

before(async () => {
  system = await startLocalSystem({ log: (l) => console.log(`[local-system] ${l}`) });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
  work = await mkdtemp(join(tmpdir(), "service-ca-ops-"));
  plugin = await buildPlugin(join(work, "kubectl-service_ca"));
  await core.createNamespace({ body: { metadata: { name: NS } } });
});
after(async () => {
  await system?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

async function caSecret() {
  return core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: "signing-key" });
}

async function annotatedService(name: string, secretName = `${name}-tls`) {
  return core.createNamespacedService({
    namespace: NS,
    body: {
      metadata: { name, annotations: { [annotations.secretName]: secretName } },
      spec: { ports: [{ port: 443 }] },
    },
  });
}

const secretOf = (name: string) =>
  waitFor(
    `Secret ${NS}/${name}`,
    () => core.readNamespacedSecret({ namespace: NS, name }).catch(() => undefined),
    { timeoutMs: 30_000, intervalMs: 100 },
  );

describe("metrics that never lie", () => {
  it("every function's service_ca_* series agree with the CA Secret, the audit log and the scan", async () => {
    for (const name of ["m1", "m2"]) await annotatedService(name);
    await Promise.all(["m1-tls", "m2-tls"].map(secretOf));
    await core.createNamespacedConfigMap({
      namespace: NS,
      body: {
        metadata: { name: "trust", annotations: { "service.beta.openshift.io/inject-cabundle": "true" } },
      },
    });
    const token = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, "metrics-rotator", rotatorRules());
    const rotated = await fetch(`${system.functions.get("rotate-ca")!.url}/rotate`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
      body: JSON.stringify({ reason: "metrics truth" }),
    });
    assert.equal(rotated.status, 200, await rotated.clone().text());
    // The fan-out settles: both leaves from the new CA, the ConfigMap holding both CAs.
    const ca = await caSecret();
    const bundle = decodeBundle(unb64(ca.data![caKeys.bundle]));
    assert.equal(bundle.length, 2);
    await waitFor(
      "the fan-out",
      async () => {
        const cm = await core.readNamespacedConfigMap({ namespace: NS, name: "trust" });
        const leaves = await Promise.all(["m1-tls", "m2-tls"].map(secretOf));
        const fromNew = leaves.every(
          (s) =>
            s.metadata?.annotations?.[annotations.expiry] &&
            unb64(s.data?.["tls.crt"]).split("BEGIN").length > 2,
        );
        return decodeBundle(cm.data?.["service-ca.crt"] ?? "").length === 2 && fromNew ? true : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // One scan whose answer we keep, so its gauges have a truth to meet.
    const scan = await deliver(
      system.functions.get("expiry-scan")!.url,
      pingEvent(SYSTEM_NAMESPACE, "metrics-truth"),
      await sourceToken(system.kc, "expiry-scan"),
    );
    assert.equal(scan.status, 200);
    const scanned = (scan.json as { outcomes: Record<string, number> }).outcomes;

    const events = await auditSince(audited(), 0);
    const caNotAfter = Math.floor(decodeBundle(unb64(ca.data![caKeys.cert]))[0]!.notAfter.getTime() / 1000);
    const oldestTrusted = Math.floor(Math.min(...bundle.map((c) => c.notAfter.getTime())) / 1000);
    const checked: string[] = [];
    for (const [fn, running] of system.functions) {
      const series = await scrape(running.url);
      const value = (name: string) => series.get(`${name}{function="${fn}"}`);
      const sum = (prefix: string) =>
        [...series].filter(([k]) => k.startsWith(`${prefix}{`)).reduce((n, [, v]) => n + v, 0);
      const writes = writesBy(events, { username: serviceAccountUser(fn) }).filter(succeeded);
      for (const key of series.keys()) {
        const name = key.slice(0, key.indexOf("{"));
        checked.push(`${fn} ${name}`);
        switch (name) {
          case "service_ca_expiry_time_seconds":
            assert.equal(value(name), caNotAfter, `${fn}: the CA's not-after`);
            break;
          case "service_ca_trusted_oldest_expiry_time_seconds":
            assert.equal(value(name), oldestTrusted, `${fn}: the oldest trusted CA's not-after`);
            break;
          case "service_ca_certificates_issued_total": {
            // Each issue is one create or update of a serving Secret (the CA's own Secret aside).
            const secretWrites = writes.filter(
              (e) =>
                e.objectRef?.resource === "secrets" &&
                e.objectRef.name !== "signing-key" &&
                (e.verb === "create" || e.verb === "update"),
            );
            assert.equal(sum(name), secretWrites.length, `${fn}: certificates issued = Secret writes`);
            break;
          }
          case "service_ca_injections_total": {
            const injected = writes.filter(
              (e) => INJECTABLE.has(e.objectRef?.resource ?? "") && e.objectRef?.name !== "signing-cabundle",
            );
            assert.equal(sum(name), injected.length, `${fn}: injections = bundle writes`);
            break;
          }
          case "service_ca_last_scan_services": {
            const outcome = /outcome="([^"]+)"/.exec(key)![1]!;
            assert.equal(series.get(key), scanned[outcome] ?? 0, `${fn}: last scan ${outcome}`);
            break;
          }
          case "service_ca_last_scan_timestamp_seconds":
            assert.ok(Math.abs(series.get(key)! - Date.now() / 1000) < 120, `${fn}: the last scan's time`);
            break;
        }
      }
      if (fn.startsWith("inject-")) {
        assert.equal(value("service_ca_expiry_time_seconds"), undefined, `${fn} never loads the CA`);
        assert.equal(value("service_ca_trusted_oldest_expiry_time_seconds"), undefined);
      }
    }
    for (const must of [
      "issue-serving-cert service_ca_expiry_time_seconds",
      "rotate-ca service_ca_expiry_time_seconds",
      "expiry-scan service_ca_last_scan_services",
      "inject-configmap service_ca_injections_total",
    ]) {
      assert.ok(checked.includes(must), `${must} was checked`);
    }
  });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

const runPlugin = (kubeconfig: string, ...args: string[]) =>
  new Promise<Run>((resolve) => {
    execFile(
      process.execPath,
      [plugin, ...args],
      { env: { ...process.env, KUBECONFIG: kubeconfig } },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    );
  });

/** A kubeconfig of a ServiceAccount with exactly `rules` in the system namespace: the plugin's user. */
async function userKubeconfig(name: string, rules: k8s.V1PolicyRule[] | undefined) {
  const token = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, name, rules);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "local", server: system.plane.server, caFile: system.plane.caFile }],
    users: [{ name, token }],
    contexts: [{ name: "local", cluster: "local", user: name }],
    currentContext: "local",
  });
  const file = join(work, `${name}.kubeconfig`);
  await writeFile(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

/** What Knative's controllers report on a cluster (locally nothing reconciles the resources' status). */
async function markEverythingReady() {
  const co = system.kc.makeApiClient(k8s.CustomObjectsApi);
  const ready = {
    conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date().toISOString() }],
  };
  for (const [group, plural] of [
    ["serving.knative.dev", "services"],
    ["sources.knative.dev", "apiserversources"],
    ["sources.knative.dev", "pingsources"],
  ] as const) {
    const list = (await co.listNamespacedCustomObject({
      group,
      version: "v1",
      namespace: SYSTEM_NAMESPACE,
      plural,
    })) as {
      items: Array<{ metadata: { name: string } }>;
    };
    for (const item of list.items) {
      await co.patchNamespacedCustomObjectStatus(
        {
          group,
          version: "v1",
          namespace: SYSTEM_NAMESPACE,
          plural,
          name: item.metadata.name,
          body: { status: ready },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
    }
  }
}

describe("kubectl service-ca", () => {
  it("--help and usage errors", async () => {
    const help = await runPlugin(system.plane.kubeconfig, "--help");
    assert.equal(help.code, 0);
    assert.match(help.stdout, /kubectl service-ca check service <ns>\/<name>/);
    const bad = await runPlugin(system.plane.kubeconfig, "check", "service", "no-slash");
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /<namespace>\/<name> expected/);
    const noReason = await runPlugin(system.plane.kubeconfig, "rotate");
    assert.equal(noReason.code, 2);
  });

  it("status of a healthy system: the CA, the next rotation, the bundle, readiness, Services' counts", async () => {
    await markEverythingReady();
    await annotatedService("web");
    await secretOf("web-tls");
    const res = await runPlugin(system.plane.kubeconfig, "status");
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const ca = decodeBundle(unb64((await caSecret()).data![caKeys.cert]))[0]!;
    assert.match(res.stdout, new RegExp(`current: +${ca.subject}, not after ${ca.notAfter.toISOString()}`));
    assert.match(res.stdout, /next automatic rotation at /);
    assert.match(res.stdout, /Ready +Knative Service issue-serving-cert/);
    assert.match(res.stdout, /Ready +ApiServerSource /);
    assert.match(res.stdout, / 0 given up/);
    const json = JSON.parse((await runPlugin(system.plane.kubeconfig, "status", "-o", "json")).stdout) as {
      current: { notAfter: string };
      nextRotation: { at: string; due: boolean };
      services: { annotated: number; issued: number };
    };
    assert.equal(json.current.notAfter, ca.notAfter.toISOString());
    assert.equal(json.nextRotation.at, new Date(ca.notAfter.getTime() - 395 * DAY_MS).toISOString());
    assert.equal(json.nextRotation.due, false);
    assert.equal(json.services.issued, json.services.annotated);
  });

  it("check service: OK with its certificate; a foreign Secret in the way, with the fix", async () => {
    const ok = await runPlugin(system.plane.kubeconfig, "check", "service", `${NS}/web`);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /Certificate: +OK: has a valid certificate from the current CA/);
    assert.match(ok.stdout, /DNS names: +web\.ops\.svc, web\.ops\.svc\.cluster\.local/);

    await core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: "taken" }, stringData: { x: "y" } },
    });
    await annotatedService("blocked", "taken");
    await waitFor(
      "the Service's error annotation",
      async () => {
        const s = await core.readNamespacedService({ namespace: NS, name: "blocked" });
        return s.metadata?.annotations?.[annotations.error] ? s : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    const res = await runPlugin(system.plane.kubeconfig, "check", "service", `${NS}/blocked`);
    assert.equal(res.code, 1, res.stdout + res.stderr);
    assert.match(res.stdout, /NOT OK: Secret ops\/taken is in the way: it was not created for this Service/);
    assert.match(res.stdout, /Fix: +delete it \(kubectl -n ops delete secret taken\)/);
    assert.match(res.stdout, /Last event: .*on Service ops\/blocked/);
    const json = JSON.parse(
      (await runPlugin(system.plane.kubeconfig, "check", "service", `${NS}/blocked`, "-o", "json")).stdout,
    ) as { ok: boolean };
    assert.equal(json.ok, false);
  });

  it("inspect secret: a serving Secret decoded and verified; an expired one reported, exit 1", async () => {
    const good = await runPlugin(system.plane.kubeconfig, "inspect", "secret", `${NS}/web-tls`);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /Subject: +CN=web\.ops\.svc/);
    assert.match(good.stdout, /Key: +RSA 2048 bit/);
    assert.match(good.stdout, /Verifies: +yes, against the published bundle/);

    // A certificate from the current CA that expired a year ago, in a Secret of no Service.
    const ca = await caSecret();
    const signer = {
      cert: decodeBundle(unb64(ca.data![caKeys.cert]))[0]!,
      key: await importPrivateKeyPem(unb64(ca.data![caKeys.key])),
    };
    const old = await signServingCertificate({
      signer,
      hostnames: ["old.ops.svc"],
      now: new Date(Date.now() - 400 * DAY_MS),
      validityDays: 30,
    });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "old-tls" },
        type: "kubernetes.io/tls",
        data: { "tls.crt": b64(old.certPem), "tls.key": b64(old.keyPem) },
      },
    });
    const expired = await runPlugin(system.plane.kubeconfig, "inspect", "secret", `${NS}/old-tls`);
    assert.equal(expired.code, 1, expired.stdout + expired.stderr);
    assert.match(expired.stdout, /Status: +expired at /);

    // One from a CA nobody trusts.
    const stranger = await createAuthority({ now: new Date() });
    const foreign = await signServingCertificate({
      signer: { cert: stranger.cert, key: await importPrivateKeyPem(stranger.keyPem) },
      hostnames: ["x.ops.svc"],
      now: new Date(),
    });
    await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: "stranger-tls" },
        data: { "tls.crt": b64(foreign.certPem), "tls.key": b64(foreign.keyPem) },
      },
    });
    const json = JSON.parse(
      (await runPlugin(system.plane.kubeconfig, "inspect", "secret", `${NS}/stranger-tls`, "-o", "json"))
        .stdout,
    ) as {
      verifiesAgainstPublishedBundle: boolean;
    };
    assert.equal(json.verifiesAgainstPublishedBundle, false);
  });

  it("a user without rights gets the right named; with the bundle only, status reads the published bundle", async () => {
    const none = await userKubeconfig("nobody", undefined);
    const status = await runPlugin(none, "status");
    assert.equal(status.code, 3, status.stdout + status.stderr);
    assert.match(status.stderr, /cannot get secrets\/signing-key in service-ca \(forbidden\)/);
    assert.match(status.stderr, /cannot get configmaps\/signing-cabundle in service-ca \(forbidden\)/);
    const check = await runPlugin(none, "check", "service", `${NS}/web`);
    assert.equal(check.code, 3);
    assert.match(check.stderr, /cannot get services\/web in ops \(forbidden\)/);
    const inspect = await runPlugin(none, "inspect", "secret", `${NS}/web-tls`);
    assert.equal(inspect.code, 3);
    assert.match(inspect.stderr, /cannot get secrets\/web-tls in ops \(forbidden\)/);

    const reader = await userKubeconfig("bundle-reader", [
      { apiGroups: [""], resources: ["configmaps"], resourceNames: ["signing-cabundle"], verbs: ["get"] },
    ]);
    const partial = await runPlugin(reader, "status");
    assert.match(
      partial.stdout,
      /CA \(from ConfigMap service-ca\/signing-cabundle \(cannot get secrets\/signing-key in service-ca \(forbidden\)\)\)/,
    );
    assert.match(partial.stdout, /not shown: cannot list services at cluster scope \(forbidden\)/);
  });

  it("rotate --dry-run writes nothing; rotate rotates; without the right, refused", async () => {
    const url = system.functions.get("rotate-ca")!.url;
    const admin = await userKubeconfig("ca-admin", rotatorRules());
    const before = await caSecret();
    const from = await auditMark(audited());
    const dry = await runPlugin(admin, "rotate", "--dry-run", "--reason", "drill", "--url", url);
    assert.equal(dry.code, 0, dry.stdout + dry.stderr);
    assert.match(dry.stdout, /dry run \(overlap\), nothing written/);
    const events = await auditSince(audited(), from);
    for (const who of ["rotate-ca", "ca-admin"]) {
      assert.deepEqual(writesBy(events, { username: serviceAccountUser(who) }), [], `${who} wrote nothing`);
    }
    assert.equal((await caSecret()).metadata!.resourceVersion, before.metadata!.resourceVersion);

    const res = await runPlugin(admin, "rotate", "--reason", "drill", "--url", url, "-o", "json");
    assert.equal(res.code, 0, res.stdout + res.stderr);
    const out = JSON.parse(res.stdout) as { outcome: string; old: { ca: string }; new: { ca: string } };
    assert.equal(out.outcome, "rotated");
    const now = decodeBundle(unb64((await caSecret()).data![caKeys.cert]))[0]!;
    assert.equal(`CN=${out.new.ca}`, now.subject);
    assert.notEqual(out.new.ca, out.old.ca);

    const nobody = await userKubeconfig("not-a-rotator", undefined);
    const refused = await runPlugin(nobody, "rotate", "--reason", "x", "--url", url);
    assert.equal(refused.code, 3);
    assert.match(refused.stderr, /may not update secrets\/signing-key in service-ca/);
  });
});
