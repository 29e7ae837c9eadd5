// Events are hints; the API server is the truth. Forged, repeated, reordered and stale events against functions
// running under their own ServiceAccounts, with every write counted from the API server's audit log.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { apiServerEvent, deliver, sourceToken, type ObjectLike } from "../../dev/events.ts";
import { asEvent, notifyFunction } from "../support/object-events.ts";
import { createNamespace } from "../support/namespaces.ts";
import { waitFor } from "../../dev/processes.ts";
import { kubectl } from "../support/kubectl.ts";
import {
  auditMark,
  auditSince,
  describeWrite,
  succeeded,
  tokenIdentity,
  writesBy,
  type AuditEvent,
  type Identity,
} from "../../dev/audit.ts";
import { servingSecretProblems } from "../support/serving-secrets.ts";
import { annotations } from "../../shared/names.ts";

interface Fn extends RunningFunction {
  identity: Identity;
  logFile: string;
}

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let caNs: string;
let ns: string;
const fns: Record<string, Fn> = {};
const names = ["issue-serving-cert", "expiry-scan", "inject-configmap", "inject-apiservice"] as const;
type Name = (typeof names)[number];

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  // A CA of this file's own, so "exactly one write" is not muddied by a CA another file is creating.
  caNs = await createNamespace(cluster.kc, "hints-ca");
  ns = await createNamespace(cluster.kc, "hints");
  const logs = await mkdtemp(join(tmpdir(), "hints-"));
  for (const name of names) {
    const kubeconfig = await functionKubeconfig(cluster, name, caNs);
    const logFile = join(logs, `${name}.log`);
    const fn = await startFunction(name, {
      kubeconfig,
      logFile,
      env: { LOG_LEVEL: "info", CA_NAMESPACE: caNs },
    });
    fns[name] = { ...fn, identity: await tokenIdentity(kubeconfig), logFile };
  }
  // The CA exists before anything is counted.
  const warm = await annotatedService("warm", "warm-tls");
  assert.equal((await notify("issue-serving-cert", warm, "Service", "add")).json.outcome, "issued");
});
after(() => Promise.all(Object.values(fns).map((f) => f.process.stop())));

const notify = (
  fn: Name,
  o: { metadata?: k8s.V1ObjectMeta },
  kind: string,
  action: "add" | "update" | "delete",
  mode: "ref" | "resource" = "ref",
) => notifyFunction(cluster.kc, fns[fn]!, o, kind, { action, mode });

function annotatedService(name: string, secretName: string, more: Record<string, string> = {}) {
  return core.createNamespacedService({
    namespace: ns,
    body: {
      metadata: { name, annotations: { [annotations.secretName]: secretName, ...more } },
      spec: { ports: [{ port: 443 }] },
    },
  });
}

/** Every write the given functions made while `work` ran, from the audit log. */
async function writesDuring(who: Name[], work: () => Promise<void>): Promise<AuditEvent[]> {
  const mark = await auditMark(cluster);
  await work();
  const events = await auditSince(cluster, mark);
  return who.flatMap((n) => writesBy(events, fns[n]!.identity));
}

const bundle = async () =>
  (await core.readNamespacedConfigMap({ namespace: caNs, name: "signing-cabundle" })).data!["ca-bundle.crt"]!;
const readSecret = (name: string) => core.readNamespacedSecret({ namespace: ns, name });
const exists = (name: string) =>
  readSecret(name).then(
    () => true,
    (err: unknown) => {
      if (err instanceof k8s.ApiException && err.code === 404) return false;
      throw err;
    },
  );

describe("events are hints", () => {
  it("a forged 'Secret deleted' event while the Secret exists re-issues nothing", async () => {
    const svc = await annotatedService("web", "web-tls");
    assert.equal((await notify("issue-serving-cert", svc, "Service", "add")).json.outcome, "issued");
    const secret = await readSecret("web-tls");
    let forged = 0;
    const writes = await writesDuring(["issue-serving-cert"], async () => {
      for (const mode of ["ref", "resource"] as const) {
        for (let i = 0; i < 2; i++) {
          const res = await notify("issue-serving-cert", secret, "Secret", "delete", mode);
          assert.equal(res.status, 200, JSON.stringify(res.json));
          assert.deepEqual(
            (res.json.services as Array<{ outcome: string }>).map((s) => s.outcome),
            ["current"],
          );
          forged++;
        }
      }
    });
    assert.deepEqual(writes.map(describeWrite), []);
    const still = await readSecret("web-tls");
    assert.equal(still.metadata!.resourceVersion, secret.metadata!.resourceVersion);
    assert.equal(still.data!["tls.crt"], secret.data!["tls.crt"]);
    console.log(
      `reliability: hints forged delete: ${forged} forged "Secret deleted" events (Reference and Resource mode) while the Secret exists → 0 writes, Secret unchanged`,
    );
  });

  it("the same event delivered 10 times → exactly one write of the Secret", async () => {
    const svc = await annotatedService("dup", "dup-tls");
    const event = apiServerEvent(asEvent(svc, "Service"), "add"); // one event, one ce-id, ten deliveries
    const first = await writesDuring(["issue-serving-cert"], async () => {
      assert.equal(
        (
          await deliver(
            fns["issue-serving-cert"]!.url,
            event,
            await sourceToken(cluster.kc, "issue-serving-cert"),
          )
        ).json.outcome,
        "issued",
      );
    });
    const repeats = await writesDuring(["issue-serving-cert"], async () => {
      for (let i = 0; i < 9; i++) {
        const res = await deliver(
          fns["issue-serving-cert"]!.url,
          event,
          await sourceToken(cluster.kc, "issue-serving-cert"),
        );
        assert.equal(res.json.outcome, "current");
      }
    });
    const secretWrites = first.filter((e) => e.objectRef?.resource === "secrets");
    assert.deepEqual(secretWrites.map(describeWrite), [`create secrets ${ns}/dup-tls → 201`]);
    assert.deepEqual(repeats.map(describeWrite), [], "deliveries 2–10 write nothing");

    // The same, with all ten deliveries at once (a redelivery racing the original).
    const par = await annotatedService("dup-par", "dup-par-tls");
    const parEvent = apiServerEvent(asEvent(par, "Service"), "add");
    const racing = await writesDuring(["issue-serving-cert"], async () => {
      const answers = await Promise.all(
        Array.from({ length: 10 }, async () =>
          deliver(
            fns["issue-serving-cert"]!.url,
            parEvent,
            await sourceToken(cluster.kc, "issue-serving-cert"),
          ),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        Array(10).fill(200),
        JSON.stringify(answers.map((a) => a.json)),
      );
    });
    const parSecret = racing.filter((e) => e.objectRef?.resource === "secrets");
    assert.equal(parSecret.filter(succeeded).length, 1, parSecret.map(describeWrite).join("\n"));
    const problems = await servingSecretProblems(
      [
        { secret: await readSecret("dup-tls"), service: "dup" },
        { secret: await readSecret("dup-par-tls"), service: "dup-par" },
      ],
      await bundle(),
    );
    assert.deepEqual(problems, []);
    console.log(
      `reliability: hints duplicates: 1 event × 10 sequential deliveries → 1 Secret write (${first.length} writes in all, all in the first delivery); × 10 concurrent → 1 successful Secret write (${parSecret.filter((e) => !succeeded(e)).length} racing create(s) refused by the API server), both Secrets valid`,
    );
  });

  it("Service update events delivered out of order → the final state is the Service's current one", async () => {
    const v1 = await annotatedService("ooo", "a-tls");
    const annotate = async (...args: string[]) => {
      await kubectl(cluster, "-n", ns, "annotate", "service", "ooo", "--overwrite", ...args);
      return core.readNamespacedService({ namespace: ns, name: "ooo" });
    };
    const v2 = await annotate(`${annotations.secretName}=b-tls`);
    const v3 = await annotate(`${annotations.keyAlgorithm}=ecdsa-p256`);
    for (const [v, action] of [
      [v3, "update"],
      [v1, "add"],
      [v2, "update"],
    ] as const) {
      const res = await notify("issue-serving-cert", v, "Service", action, "resource");
      assert.equal(res.status, 200, JSON.stringify(res.json));
    }
    assert.equal(await exists("a-tls"), false, "the stale name was never issued");
    const b = await readSecret("b-tls");
    assert.deepEqual(await servingSecretProblems([{ secret: b, service: "ooo" }], await bundle()), []);
    const { X509Certificate } = await import("node:crypto");
    const leaf = new X509Certificate(Buffer.from(b.data!["tls.crt"]!, "base64"));
    assert.equal(leaf.publicKey.asymmetricKeyType, "ec", "the newest annotation (ECDSA) wins");

    // The annotation goes away; the stale annotated versions arrive afterwards.
    const v4 = await annotate(`${annotations.secretName}-`, `${annotations.keyAlgorithm}-`);
    const writes = await writesDuring(["issue-serving-cert"], async () => {
      for (const v of [v4, v2, v1, v3]) {
        const res = await notify("issue-serving-cert", v, "Service", "update", "resource");
        assert.equal(res.json.outcome, "not-annotated");
      }
    });
    assert.deepEqual(writes.map(describeWrite), []);
    assert.equal(await exists("a-tls"), false);
    assert.equal((await readSecret("b-tls")).metadata!.resourceVersion, b.metadata!.resourceVersion);
    console.log(
      "reliability: hints out of order: 3 versions delivered newest-first then stale → the Secret the Service names now, ECDSA as it asks; 4 stale events after the annotation went → 0 writes, no Secret for the stale name",
    );
  });

  it("an event for an object that no longer exists → 2xx and nothing written", async () => {
    const gone = await annotatedService("gone", "gone-tls");
    await core.deleteNamespacedService({ namespace: ns, name: "gone" });
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: { name: "gone-cm", annotations: { "service.beta.openshift.io/inject-cabundle": "true" } },
      },
    });
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "gone-cm" });
    const ghostSecret = { metadata: { name: "gone-tls", namespace: ns } };
    const elsewhere = {
      metadata: { name: "x", namespace: `hints-no-such-namespace-${randomUUID().slice(0, 6)}` },
    };
    let events = 0;
    const writes = await writesDuring(["issue-serving-cert", "inject-configmap"], async () => {
      for (const action of ["add", "update"] as const) {
        for (const mode of ["ref", "resource"] as const) {
          const expectations: Array<[Name, { metadata?: k8s.V1ObjectMeta }, string, string]> = [
            ["issue-serving-cert", gone, "Service", "service-gone"],
            ["issue-serving-cert", elsewhere, "Service", "service-gone"],
            ["issue-serving-cert", ghostSecret, "Secret", "unrelated"],
            ["inject-configmap", cm, "ConfigMap", "gone"],
            // In Resource mode a copy without the annotation needs nothing, so it is answered without a read.
            ["inject-configmap", elsewhere, "ConfigMap", mode === "resource" ? "not-annotated" : "gone"],
          ];
          for (const [fn, o, kind, outcome] of expectations) {
            const res = await notify(fn, o, kind, action, mode);
            assert.equal(res.status, 200, `${fn} ${kind} ${action}: ${JSON.stringify(res.json)}`);
            assert.equal(res.json.outcome, outcome);
            events++;
          }
        }
      }
    });
    assert.deepEqual(writes.map(describeWrite), []);
    assert.equal(await exists("gone-tls"), false);
    console.log(
      `reliability: hints stale: ${events} events for deleted Services, Secrets, ConfigMaps and a missing namespace → all 200, 0 writes`,
    );
  });

  it("an event naming what the function may not touch is refused (403) and logged", async () => {
    const caSecret = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    const refusals: Array<[Name, ObjectLike, RegExp]> = [
      // The CA's own Secret is no serving certificate: issue-serving-cert never acts on it.
      ["issue-serving-cert", asEvent(caSecret, "Secret"), new RegExp(`${caNs}/signing-key`)],
      // ConfigMaps other than the published bundle: expiry-scan and inject-apiservice may not even read them.
      [
        "expiry-scan",
        asEvent(
          { metadata: { namespace: "kube-system", name: "extension-apiserver-authentication" } },
          "ConfigMap",
        ),
        /only to the CA bundle ConfigMap/,
      ],
      [
        "inject-apiservice",
        asEvent(
          { metadata: { namespace: "kube-system", name: "extension-apiserver-authentication" } },
          "ConfigMap",
        ),
        /not ConfigMap kube-system\/extension-apiserver-authentication/,
      ],
      [
        "inject-apiservice",
        asEvent({ metadata: { namespace: caNs, name: "not-the-bundle" } }, "ConfigMap"),
        /reacts only to the CA bundle ConfigMap/,
      ],
    ];
    const writes = await writesDuring([...names], async () => {
      for (const [fn, obj, message] of refusals) {
        for (const mode of ["ref", "resource"] as const) {
          const event = apiServerEvent(obj, "update", mode);
          const res = await deliver(fns[fn]!.url, event, await sourceToken(cluster.kc, fn));
          assert.equal(res.status, 403, `${fn}: ${JSON.stringify(res.json)}`);
          const error = res.json.error as { kind: string; message: string };
          assert.equal(error.kind, "forbidden");
          assert.match(error.message, message);
          const ceId = event.headers["ce-id"]!;
          await waitFor(
            `${fn} to log the refusal of ${ceId}`,
            async () =>
              (await readFile(fns[fn]!.logFile, "utf8"))
                .split("\n")
                .find(
                  (l) => l.includes(ceId) && l.includes("request rejected") && l.includes('"status":403'),
                ),
            { timeoutMs: 5000, intervalMs: 50 },
          );
        }
      }
    });
    assert.deepEqual(writes.map(describeWrite), []);
    const still = await core.readNamespacedSecret({ namespace: caNs, name: "signing-key" });
    assert.equal(still.metadata!.resourceVersion, caSecret.metadata!.resourceVersion);
    console.log(
      `reliability: hints refused: ${refusals.length * 2} events naming the CA Secret or ConfigMaps outside a function's remit → 403 each, each logged with its ce-id, 0 writes, CA Secret unchanged`,
    );
  });
});
