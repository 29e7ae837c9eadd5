// Faults on a control plane of this file's own: the API server stopped and restarted in the middle of a burst,
// etcd paused, the issuing function SIGKILLed mid-issue, a 409 injected on the first write to every object. The
// test is the broker: what was answered 5xx (or not at all) is re-posted, then one expiry-scan runs. Afterwards
// every annotated Service has exactly one valid, whole Secret, there is exactly one CA, and no foreign Secret moved.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startControlPlane, type ControlPlane } from "../../dev/controlplane/control-plane.ts";
import { installInfra, serviceAccountKubeconfig } from "../../dev/local-system/local-system.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { apiServerEvent, deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { asEvent } from "../support/object-events.ts";
import { startFaultProxy, type FaultProxy } from "../support/fault-proxy.ts";
import { Broker, type Delivery } from "../support/broker.ts";
import { servingSecretProblems } from "../support/serving-secrets.ts";
import { auditMark, auditSince, succeeded, type AuditEvent } from "../../dev/audit.ts";
import { annotations } from "../../shared/names.ts";
import { mapLimit } from "../../shared/runtime/concurrency.ts";

const CA_NS = "service-ca";
const NS = "faults";

let plane: ControlPlane;
let kc: k8s.KubeConfig;
let core: k8s.CoreV1Api;
let proxy: FaultProxy;
let logs: string;
let issuer: RunningFunction;
let issuerKubeconfig: string;
const broker = new Broker();
const annotated: Array<{ service: string; secret: string }> = [];
const foreign = new Map<string, string>(); // name → resourceVersion at the start
const faults: string[] = [];

before(async () => {
  plane = await startControlPlane({ log: (l) => console.log(`[control-plane] ${l}`) });
  await installInfra(plane);
  kc = new k8s.KubeConfig();
  kc.loadFromFile(plane.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: NS } } });
  proxy = await startFaultProxy(plane);
  logs = await mkdtemp(join(tmpdir(), "faults-"));
  issuerKubeconfig = await proxy.kubeconfigVia(await serviceAccountKubeconfig(plane, "issue-serving-cert"));
  issuer = await startIssuer();
  // Secrets that are not ours: two bystanders, and two that annotated Services will ask for by name.
  for (const name of ["bystander-a", "bystander-b", "taken-a", "taken-b"]) {
    const s = await core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name, annotations: { owner: "someone-else" } },
        type: "Opaque",
        data: { password: Buffer.from(`${name}-secret`).toString("base64") },
      },
    });
    foreign.set(name, s.metadata!.resourceVersion!);
  }
});
after(async () => {
  await issuer?.process.stop();
  await proxy?.close();
  await plane?.stop();
});

function startIssuer() {
  return startFunction("issue-serving-cert", {
    kubeconfig: issuerKubeconfig,
    logFile: join(logs, "issue-serving-cert.log"),
    // A stalled API server turns into a 503 (and a redelivery) after this, not after the default 30 s.
    env: { LOG_LEVEL: "info", REQUEST_TIMEOUT_SECONDS: "10" },
  });
}

async function createAnnotated(prefix: string, n: number, secretFor = (i: number) => `${prefix}-${i}-tls`) {
  const created: k8s.V1Service[] = [];
  for (let i = 0; i < n; i++) {
    const secret = secretFor(i);
    const svc = await core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: `${prefix}-${i}`, annotations: { [annotations.secretName]: secret } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    if (!foreign.has(secret)) annotated.push({ service: svc.metadata!.name!, secret });
    created.push(svc);
  }
  return created;
}

const addEvent = (svc: k8s.V1Service): Delivery => ({
  target: () => issuer.url,
  event: apiServerEvent(asEvent(svc, "Service"), "add"),
  token: () => sourceToken(kc, "issue-serving-cert"),
  label: `Service ${svc.metadata!.name}`,
});

describe("faults", () => {
  it("kube-apiserver stopped and restarted in the middle of a burst of annotations", async () => {
    const services = await createAnnotated("burst", 24, (i) =>
      i === 5 ? "taken-a" : i === 17 ? "taken-b" : `burst-${i}-tls`,
    );
    const failedBefore = broker.stats.failed;
    const send = (batch: k8s.V1Service[]) => mapLimit(batch, 4, (svc) => broker.send(addEvent(svc)));
    // 6 events before the outage, 14 while the API server shuts down, 4 once it is gone; back 2 s later.
    await send(services.slice(0, 6));
    const t = performance.now();
    await Promise.all([plane.stopApiServer(), send(services.slice(6, 20))]);
    const whileDown = await send(services.slice(20));
    await new Promise((r) => setTimeout(r, 2000));
    await plane.startApiServer();
    const downFor = (performance.now() - t) / 1000;
    assert.ok(
      whileDown.every((a) => a === "no answer" || a >= 500),
      `answers while down: ${whileDown}`,
    );
    const failed = broker.stats.failed - failedBefore;
    assert.ok(failed > 0, "the outage cost some deliveries (else it did not happen mid-burst)");
    const rounds = await broker.redeliver();
    assert.equal(broker.pending, 0);
    faults.push(
      `kube-apiserver stopped after 6 of ${services.length} events (14 more during its shutdown, 4 while it was gone), back ${downFor.toFixed(1)} s later: ${failed} deliveries failed (5xx or no answer), redelivered in ${rounds} round(s)`,
    );
    console.log(`reliability: faults ${faults.at(-1)}`);
  });

  it("etcd paused for 4 seconds while events are handled", async () => {
    const services = await createAnnotated("pause", 10);
    const etcd = plane.processes().find((p) => p.name === "etcd")!;
    const failedBefore = broker.stats.failed;
    const started = performance.now();
    etcd.kill("SIGSTOP");
    let resumed = false;
    const resume = new Promise<void>((resolve) =>
      setTimeout(() => {
        etcd.kill("SIGCONT");
        resumed = true;
        resolve();
      }, 4000),
    );
    try {
      const answers = await Promise.all(services.map((svc) => broker.send(addEvent(svc))));
      await resume;
      const waited = (performance.now() - started) / 1000;
      assert.ok(resumed && waited >= 4, "the events were in flight while etcd was paused");
      const failed = broker.stats.failed - failedBefore;
      const rounds = await broker.redeliver();
      assert.equal(broker.pending, 0);
      faults.push(
        `etcd SIGSTOPped for 4 s under ${services.length} concurrent events: answers ${summarize(answers)} after ${waited.toFixed(1)} s, ${failed} redelivered in ${rounds} round(s)`,
      );
      console.log(`reliability: faults ${faults.at(-1)}`);
    } finally {
      etcd.kill("SIGCONT");
    }
  });

  it("issue-serving-cert SIGKILLed in the middle of issuing", async () => {
    const services = await createAnnotated("kill", 20);
    const failedBefore = broker.stats.failed;
    let answered = 0;
    const victim = issuer;
    const answers = await Promise.all(
      services.map(async (svc) => {
        const status = await broker.send(addEvent(svc));
        if (++answered === 3) victim.process.kill("SIGKILL");
        return status;
      }),
    );
    await victim.process.exited;
    const cut = broker.stats.failed - failedBefore;
    const existing = new Set(
      (await core.listNamespacedSecret({ namespace: NS })).items.map((s) => s.metadata!.name),
    );
    const writtenBeforeKill = services.filter((s) => existing.has(`${s.metadata!.name}-tls`)).length;
    assert.ok(cut > 0, "some deliveries were in flight when the process died");
    issuer = await startIssuer();
    const rounds = await broker.redeliver();
    assert.equal(broker.pending, 0);
    faults.push(
      `issue-serving-cert SIGKILLed after 3 of ${services.length} concurrent events were answered: ${writtenBeforeKill} Secrets written before it died, ${cut} deliveries cut off (answers ${summarize(answers)}), restarted, redelivered in ${rounds} round(s)`,
    );
    console.log(`reliability: faults ${faults.at(-1)}`);
  });

  it("a 409 conflict injected on the first write to every object", async () => {
    const services = await createAnnotated("conflict", 10);
    // And a Secret to repair (a replace, not a create): corrupt one the outage burst produced.
    const victim = await core.readNamespacedSecret({ namespace: NS, name: "burst-0-tls" });
    victim.data!["tls.crt"] = Buffer.from("not a certificate").toString("base64");
    const corrupted = await core.replaceNamespacedSecret({
      namespace: NS,
      name: "burst-0-tls",
      body: victim,
    });
    const injectedBefore = proxy.counts.injectedConflicts;
    proxy.conflictOnFirstWrite = true;
    try {
      const deliveries: Delivery[] = [
        ...services.map(addEvent),
        {
          target: () => issuer.url,
          event: apiServerEvent(asEvent(corrupted, "Secret"), "update"),
          token: () => sourceToken(kc, "issue-serving-cert"),
          label: "Secret burst-0-tls",
        },
      ];
      const answers = await Promise.all(deliveries.map((d) => broker.send(d)));
      const rounds = await broker.redeliver();
      assert.equal(broker.pending, 0);
      const injected = proxy.counts.injectedConflicts - injectedBefore;
      assert.ok(injected >= services.length, `a conflict for each new Secret at least (${injected})`);
      faults.push(
        `409 Conflict injected by the proxy on the first write to each object: ${injected} conflicts over ${deliveries.length} events (answers ${summarize(answers)}), redelivered in ${rounds} round(s)`,
      );
      console.log(`reliability: faults ${faults.at(-1)}`);
    } finally {
      proxy.conflictOnFirstWrite = false;
    }
  });

  it("after recovery (redelivery and one expiry-scan): one valid, whole Secret per Service, one CA, foreign Secrets untouched", async () => {
    const mark = await auditMark(plane);
    const scanner = await startFunction("expiry-scan", {
      kubeconfig: await proxy.kubeconfigVia(await serviceAccountKubeconfig(plane, "expiry-scan")),
      logFile: join(logs, "expiry-scan.log"),
      env: { LOG_LEVEL: "info" },
    });
    try {
      const scan = await deliver(
        scanner.url,
        pingEvent(CA_NS, "expiry-scan-hourly"),
        await sourceToken(kc, scanner.name),
      );
      assert.equal(scan.status, 200, JSON.stringify(scan.json));
      console.log(`reliability: faults expiry-scan after recovery: ${JSON.stringify(scan.json.outcomes)}`);
    } finally {
      await scanner.process.stop();
    }
    const scanWrites = (await auditSince({ auditLog: plane.auditLog, kc }, mark)).filter(
      (e) => e.objectRef?.resource === "secrets" && e.user.username.endsWith(":expiry-scan"),
    );

    const bundle = (await core.readNamespacedConfigMap({ namespace: CA_NS, name: "signing-cabundle" })).data![
      "ca-bundle.crt"
    ]!;
    assert.equal(bundle.match(/BEGIN CERTIFICATE/g)?.length, 1, "exactly one CA in the bundle");
    const caSecrets = (await core.listNamespacedSecret({ namespace: CA_NS })).items.filter(
      (s) => s.type === "kubernetes.io/tls",
    );
    assert.deepEqual(
      caSecrets.map((s) => s.metadata!.name),
      ["signing-key"],
      "exactly one CA Secret",
    );
    const caCreates = (await auditSince({ auditLog: plane.auditLog, kc }, 0)).filter(
      (e: AuditEvent) =>
        e.verb === "create" && e.objectRef?.resource === "secrets" && e.objectRef.namespace === CA_NS,
    );
    assert.equal(caCreates.filter(succeeded).length, 1, "the CA Secret was created once");

    const secrets = (await core.listNamespacedSecret({ namespace: NS })).items;
    const byName = new Map(secrets.map((s) => [s.metadata!.name!, s]));
    const services = new Map(
      (await core.listNamespacedService({ namespace: NS })).items.map((s) => [s.metadata!.name!, s]),
    );
    const missing = annotated.filter((a) => !byName.has(a.secret)).map((a) => a.secret);
    assert.deepEqual(missing, [], "no Secret lost");
    for (const a of annotated) {
      const s = byName.get(a.secret)!;
      assert.equal(
        s.metadata!.annotations![annotations.originUid],
        services.get(a.service)!.metadata!.uid,
        `${a.secret} belongs to ${a.service}`,
      );
    }
    // Exactly one Secret each: nothing in the namespace but the annotated Services' Secrets and the foreign ones.
    assert.deepEqual(
      secrets.map((s) => s.metadata!.name!).sort(),
      [...annotated.map((a) => a.secret), ...foreign.keys()].sort(),
    );
    const problems = await servingSecretProblems(
      annotated.map((a) => ({ secret: byName.get(a.secret)!, service: a.service })),
      bundle,
    );
    assert.deepEqual(problems, []);
    for (const [name, rv] of foreign)
      assert.equal(byName.get(name)!.metadata!.resourceVersion, rv, `foreign Secret ${name} untouched`);

    // And the Services whose Secret name was taken say so.
    for (const name of ["burst-5", "burst-17"])
      assert.match(
        services.get(name)!.metadata!.annotations![annotations.error] ?? "",
        /was not created for/,
      );

    console.log(
      `reliability: faults summary: ${faults.length} faults injected; ${broker.stats.attempts} deliveries (${broker.stats.failed} failed → ${broker.stats.redeliveries} redelivered), ${broker.stats.rejected.length} rejected 4xx; proxy saw ${proxy.counts.requests} requests, ${proxy.counts.writes} writes, ${proxy.counts.injectedConflicts} injected 409s, ${proxy.counts.upstreamFailures} during the outage`,
    );
    console.log(
      `reliability: faults checked: ${annotated.length} annotated Services → ${annotated.length} Secrets, 0 lost, 0 half-written, all openssl-verified against a bundle of 1 CA (created once); ${foreign.size} foreign Secrets unchanged; expiry-scan wrote ${scanWrites.filter(succeeded).length} Secrets`,
    );
    assert.deepEqual(
      broker.stats.rejected.map((r) => `${r.label}: ${r.status}`),
      [],
      "no event was refused along the way",
    );
  });
});

function summarize(answers: Array<number | "no answer">): string {
  const counts = new Map<string, number>();
  for (const a of answers) counts.set(String(a), (counts.get(String(a)) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k}×${n}`).join(" ");
}
