// A simulated five-year life of the CA, twice over:
//  A. continuously on a manual clock against the real API server: every automatic rotation and one forced
//     one, with a server and a client each reloading at a random moment of the overlap, checked by openssl
//     at the simulated time (-attime);
//  B. with real peers at real time: each rotation rebuilt so that its moment is now (the CA planted with a clock
//     set in the past), then rotated by the functions themselves while the kube-apiserver keeps calling a webhook
//     served with the Secret, a TLS server reloads its Secret and a client reloads its injected bundle.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomInt } from "node:crypto";
import { connect } from "node:tls";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { notifyOk } from "../support/object-events.ts";
import { createNamespace } from "../support/namespaces.ts";
import { createTestHost, type TestHost } from "../support/netns.ts";
import { waitFor, type Tied } from "../../dev/processes.ts";
import { createBackendService, startTlsBackend } from "../support/tls-backend.ts";
import { opensslVerifies, overlapPairs } from "../support/tls.ts";
import type { CaMaterial } from "../../shared/ca-store/store.ts";
import { caStoreIn } from "../support/ca-store.ts";
import { createLogger } from "../../shared/runtime/logger.ts";
import { ManualClock } from "../../shared/runtime/clock.ts";
import {
  DAY_MS,
  commonName,
  rotationDue,
  servingHostnames,
  signServingCertificate,
  readLeaf,
} from "../../shared/pki/index.ts";
import { rotatorRules, tokenWithRules } from "../../dev/tokens.ts";

const CA_NS = "service-ca";
const INJECT = "service.beta.openshift.io/inject-cabundle";
const quiet = createLogger("error");
const iso = (d: Date) => d.toISOString().slice(0, 10);

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let asRotateCa: k8s.KubeConfig;

before(async () => {
  // Rotations here change the cluster's one CA: this file gets a cluster of its own.
  cluster = await testCluster({ isolated: true });
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  asRotateCa = new k8s.KubeConfig();
  asRotateCa.loadFromFile(await functionKubeconfig(cluster, "rotate-ca"));
});

function chainParts(pem: string) {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  return { leaf: blocks[0]!, rest: blocks.slice(1).join("") };
}

const verifies = opensslVerifies;

describe("A. five years on a manual clock", () => {
  it("rotates automatically every time fewer than 395 days remain, plus once by force, with no failed verification", async () => {
    const caNs = await createNamespace(cluster.kc, "life-a");
    await functionKubeconfig(cluster, "rotate-ca", caNs); // grants rotate-ca its CA Role there
    const t0 = new Date();
    const clock = new ManualClock(t0);
    const store = caStoreIn(asRotateCa, caNs, clock, quiet);
    const names = servingHostnames("api", "shop", false);
    const end = new Date(t0.getTime() + 1826 * DAY_MS);
    const forcedAt = new Date(t0.getTime() + randomInt(100, 1700) * DAY_MS);
    let forcedDone = false;
    let material: CaMaterial = await store.signingMaterial();
    let leafPem = (await signServingCertificate({ signer: material.signer, hostnames: names, now: t0 }))
      .certPem;
    const timeline = [
      `${iso(t0)}  CA ${material.name} created (valid until ${iso(material.signer.cert.notAfter)})`,
    ];
    let automatic = 0;
    let checks = 0;
    const failures: string[] = [];

    for (;;) {
      // The first day rotate-ca's daily check finds the CA due.
      let due = new Date(material.signer.cert.notAfter.getTime() - 395 * DAY_MS + DAY_MS);
      due = new Date(Math.ceil(due.getTime() / DAY_MS) * DAY_MS);
      const forced = !forcedDone && forcedAt < due;
      const at = forced ? forcedAt : due;
      if (at > end) break;
      clock.set(at);
      if (!forced) assert.ok(rotationDue(material.signer.cert, at, 395), "due on the day it is rotated");
      const old = material;
      const oldBundle = old.bundlePem;
      const oldChain = leafPem + old.chainPem;
      const rotated = await store.rotate(forced ? "forced" : "automatic", "overlap");
      assert.ok(rotated);
      material = rotated.material;
      if (forced) forcedDone = true;
      else automatic++;
      const newChain =
        (await signServingCertificate({ signer: material.signer, hostnames: names, now: at })).certPem +
        material.chainPem;
      // The grace window: while both the previous CA and the leaf the server still holds are valid. (A leaf lives
      // 730 days, less than a CA; on a cluster it is renewed at two thirds of its life, long before.)
      const oldLeafNotAfter = readLeaf(oldChain)!.notAfter;
      const overlapEnd = new Date(Math.min(old.signer.cert.notAfter.getTime(), oldLeafNotAfter.getTime()));
      const window = overlapEnd.getTime() - at.getTime();
      const serverReload = new Date(
        at.getTime() + randomInt(1, Math.max(2, Math.floor(window / 60_000))) * 60_000 * 0.9,
      );
      const clientReload = new Date(
        at.getTime() + randomInt(1, Math.max(2, Math.floor(window / 60_000))) * 60_000 * 0.9,
      );
      timeline.push(
        `${iso(at)}  ${forced ? "forced" : "automatic"} rotation → ${commonName(material.signer.cert)}; grace window until ${iso(overlapEnd)}; server reloads ${iso(serverReload)}, client ${iso(clientReload)}`,
      );
      // At each moment the served chain and the held bundle are whatever each side last loaded.
      const moments = [at, serverReload, clientReload, new Date(overlapEnd.getTime() - DAY_MS)].map(
        (m) => new Date(m.getTime() + 1000),
      );
      for (const m of moments) {
        const chain = m >= serverReload ? newChain : oldChain;
        const bundle = m >= clientReload ? material.bundlePem : oldBundle;
        checks++;
        if (!(await verifies(bundle, chain, m)))
          failures.push(
            `${m.toISOString()}: server ${m >= serverReload ? "new" : "old"} / client ${m >= clientReload ? "new" : "old"}`,
          );
      }
      // All four combinations at a random moment inside the overlap.
      const inside = new Date(
        at.getTime() + randomInt(1, Math.max(2, Math.floor(window / 60_000))) * 60_000 * 0.9,
      );
      for (const p of overlapPairs(
        { old: oldChain, new: newChain },
        { old: oldBundle, new: material.bundlePem },
      )) {
        checks++;
        if (!(await verifies(p.bundlePem, p.certificate, inside)))
          failures.push(`${inside.toISOString()}: ${p.cert} cert / ${p.bundle} bundle`);
      }
      leafPem = chainParts(newChain).leaf;
    }
    timeline.push(
      `${iso(end)}  end: ${automatic} automatic + ${forcedDone ? 1 : 0} forced rotations, ${checks} verifications, ${failures.length} failed`,
    );
    console.log(["simulated five-year life (manual clock):", ...timeline].join("\n  "));
    assert.deepEqual(failures, []);
    assert.ok(automatic >= 3, `${automatic} automatic rotations`);
    assert.ok(forcedDone);
  });
});

describe("B. every rotation with real peers at real time", () => {
  let ns: string;
  let targetNs: string;
  let host: TestHost;
  let backend: Tied;
  let dir: string;
  const fns: Record<string, RunningFunction> = {};

  before(async () => {
    ns = await createNamespace(cluster.kc, "life-b");
    targetNs = await createNamespace(cluster.kc, "life-b-target");
    for (const name of [
      "issue-serving-cert",
      "rotate-ca",
      "expiry-scan",
      "inject-configmap",
      "inject-webhooks",
    ]) {
      fns[name] = await startFunction(name, {
        kubeconfig: await functionKubeconfig(cluster, name),
        // expiry-scan's safety-net rotation would beat rotate-ca to the planted, overdue CA: leave it to rotate-ca.
        env: { LOG_LEVEL: "warn", ...(name === "expiry-scan" ? { CA_ROTATE_MIN_REMAINING_DAYS: "1" } : {}) },
      });
    }
    host = await createTestHost();
    dir = await mkdtemp(join(tmpdir(), "life-"));
  });
  after(async () => {
    await backend?.stop();
    await host?.remove();
    await Promise.all(Object.values(fns).map((f) => f.process.stop()));
  });

  const secret = () => core.readNamespacedSecret({ namespace: ns, name: "backend-tls" });
  const pem = (s: k8s.V1Secret, k: string) => Buffer.from(s.data![k]!, "base64").toString();
  const injectedBundle = async () =>
    (await core.readNamespacedConfigMap({ namespace: ns, name: "client-trust" })).data!["service-ca.crt"]!;

  let clientBundle = "";
  const serverReload = async () => {
    const s = await secret();
    await writeFile(join(dir, "tls.crt"), pem(s, "tls.crt"));
    await writeFile(join(dir, "tls.key"), pem(s, "tls.key"));
    return pem(s, "tls.crt");
  };
  const clientReload = async () => {
    clientBundle = await injectedBundle();
  };
  const clientHandshake = () =>
    new Promise<void>((resolve, reject) => {
      const sock = connect(
        { host: host.address, port: 8443, ca: clientBundle, servername: `backend.${ns}.svc` },
        () => {
          sock.end();
          resolve();
        },
      );
      sock.once("error", reject);
    });
  let admissions = 0;
  const webhookCall = async () => {
    admissions++;
    await core.createNamespacedConfigMap({
      namespace: targetNs,
      body: { metadata: { name: `probe-${admissions}` } },
    });
  };
  const fanOut = async (fn: "expiry-scan" | "inject-webhooks" | "inject-configmap") => {
    const published = await core.readNamespacedConfigMap({ namespace: CA_NS, name: "signing-cabundle" });
    await notifyOk(cluster.kc, fns[fn]!, published, "ConfigMap", { action: "update" });
  };

  /** Rebuilds the moment before a rotation: a CA created `ageDays` ago, everything issued and injected from it. */
  async function plantAgedCa(ageDays: number): Promise<CaMaterial> {
    await core.deleteNamespacedSecret({ namespace: CA_NS, name: "signing-key" }).catch(() => {});
    const past = new ManualClock(new Date(Date.now() - ageDays * DAY_MS));
    const store = caStoreIn(asRotateCa, CA_NS, past, quiet);
    const m = await store.signingMaterial();
    await store.publishBundle(m);
    for (const fn of ["expiry-scan", "inject-webhooks", "inject-configmap"] as const) await fanOut(fn);
    await serverReload();
    await clientReload();
    await waitFor("the API server to trust the planted CA", () => webhookCall().then(() => true), {
      timeoutMs: 30_000,
      intervalMs: 200,
    });
    return m;
  }

  it("3+ automatic rotations and a forced one: 0 failed handshakes and webhook calls, all four combinations verify", async () => {
    // The backend Service, its endpoint on the test host, a webhook on it, and a ConfigMap for the client's bundle.
    await createBackendService(core, ns, host);
    await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: "client-trust", annotations: { [INJECT]: "true" } } },
    });
    const admission = cluster.kc.makeApiClient(k8s.AdmissionregistrationV1Api);
    await admission.createValidatingWebhookConfiguration({
      body: {
        metadata: { name: "life", annotations: { [INJECT]: "true" } },
        webhooks: [
          {
            name: "life.scf-test.dev",
            clientConfig: { service: { namespace: ns, name: "backend", path: "/validate", port: 443 } },
            rules: [
              { apiGroups: [""], apiVersions: ["v1"], operations: ["CREATE"], resources: ["configmaps"] },
            ],
            namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": targetNs } },
            failurePolicy: "Fail",
            sideEffects: "None",
            admissionReviewVersions: ["v1"],
            timeoutSeconds: 5,
          },
        ],
      },
    });
    const svc = await core.readNamespacedService({ namespace: ns, name: "backend" });
    await notifyOk(cluster.kc, fns["issue-serving-cert"]!, svc, "Service");
    await serverReload();
    backend = startTlsBackend(host, dir);

    const admin = await tokenWithRules(cluster.kc, CA_NS, "life-admin", rotatorRules());

    // Periods of the life: a CA aged past the rotation point (395 days left) for each automatic rotation, and one
    // forced rotation of a younger CA at a random point.
    const periods: Array<{ kind: "automatic" | "forced"; age: number }> = [
      { kind: "automatic", age: 396 + randomInt(0, 300) },
      { kind: "automatic", age: 396 + randomInt(0, 300) },
      { kind: "forced", age: randomInt(1, 390) },
      { kind: "automatic", age: 396 + randomInt(0, 300) },
    ];
    const timeline: string[] = [];
    const failures: string[] = [];
    let handshakes = 0;
    for (const [i, period] of periods.entries()) {
      const old = await plantAgedCa(period.age);
      const oldChain = pem(await secret(), "tls.crt");
      const oldBundle = clientBundle;
      const check = async (step: string) => {
        handshakes++;
        await clientHandshake().catch((err: Error) =>
          failures.push(`period ${i + 1} after ${step}: client handshake: ${err.message}`),
        );
        await webhookCall().catch((err: Error) =>
          failures.push(`period ${i + 1} after ${step}: webhook call: ${err.message}`),
        );
      };
      await check("planting");

      const res =
        period.kind === "automatic"
          ? await deliver(
              fns["rotate-ca"]!.url,
              pingEvent(CA_NS, "rotate-ca-daily"),
              await sourceToken(cluster.kc, "rotate-ca"),
            )
          : await fetch(`${fns["rotate-ca"]!.url}/rotate`, {
              method: "POST",
              headers: { "content-type": "application/json", authorization: `Bearer ${admin}` },
              body: JSON.stringify({ reason: "drill", mode: "overlap" }),
            }).then(async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }));
      assert.equal(res.status, 200, JSON.stringify(res.json));
      assert.equal(res.json.outcome, "rotated", JSON.stringify(res.json));
      await check("rotation");

      // The fan-out and the two reloads, in a random order (a reload only after what it reloads exists).
      const serverSide = [() => fanOut("expiry-scan"), serverReload];
      const clientSide = [
        async () => (await fanOut("inject-webhooks"), await fanOut("inject-configmap")),
        clientReload,
      ];
      const names = { server: ["re-issue", "server reload"], client: ["re-inject", "client reload"] };
      const order: string[] = [];
      while (serverSide.length || clientSide.length) {
        const fromServer = clientSide.length === 0 || (serverSide.length > 0 && randomInt(2) === 0);
        const step = (fromServer ? serverSide : clientSide).shift()!;
        const name = (fromServer ? names.server : names.client).shift()!;
        await step();
        order.push(name);
        await check(name);
      }
      const newChain = pem(await secret(), "tls.crt");
      const newBundle = clientBundle;
      assert.notEqual(newChain, oldChain);
      for (const p of overlapPairs({ old: oldChain, new: newChain }, { old: oldBundle, new: newBundle }))
        if (!(await verifies(p.bundlePem, p.certificate)))
          failures.push(`period ${i + 1}: openssl: ${p.cert} certificate / ${p.bundle} bundle`);
      timeline.push(
        `period ${i + 1}: ${period.kind} rotation of a CA ${period.age} days old (${commonName(old.signer.cert)}, ${Math.round((old.signer.cert.notAfter.getTime() - Date.now()) / DAY_MS)} days left) → ${(res.json.new as { ca: string }).ca}; then ${order.join(", ")}`,
      );
    }
    console.log(
      [
        "real peers, each rotation at real time:",
        ...timeline,
        `${handshakes} checkpoints, each a TLS handshake and a webhook call by the kube-apiserver; ${failures.length} failed`,
      ].join("\n  "),
    );
    assert.deepEqual(failures, []);
  });
});
