// CA distribution through the real event path: kubectl → API server → Knative's adapters (Namespaces, the copies,
// the CA namespace's ConfigMaps) → distribute-ca under its own ServiceAccount → API server. No handler is called
// directly, except the hourly ping, which is delivered as mtping would.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem, type LocalSystem } from "../../dev/local-system/local-system.ts";
import { deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { kubectl } from "../support/kubectl.ts";
import { waitFor } from "../../dev/processes.ts";
import { mapLimit } from "../../shared/runtime/concurrency.ts";
import { decodeBundle } from "../../shared/pki/index.ts";

const CA_NS = "service-ca";
const COPY = "service-ca-bundle";
const SECRET = "service-root-ca";
const OURS = "service-ca-functions.dev/distributed=true";
const SELECTED = "ca-bundle=wanted";
const MANY = 200;
const many = Array.from({ length: MANY }, (_, i) => `dist-${String(i).padStart(3, "0")}`);

let userConfigMap: k8s.V1ConfigMap;

let system: LocalSystem;
let core: k8s.CoreV1Api;
const cluster = () => ({ kubectl: system.plane.kubectl, kubeconfig: system.plane.kubeconfig });
const k = (...args: string[]) => kubectl(cluster(), ...args);
const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(2);

const bundle = async () =>
  (await core.readNamespacedConfigMap({ namespace: CA_NS, name: "signing-cabundle" })).data![
    "ca-bundle.crt"
  ]!;
const readCopy = (namespace: string) =>
  core.readNamespacedConfigMap({ namespace, name: COPY }).catch(() => undefined);
const readSecretCopy = (namespace: string) =>
  core.readNamespacedSecret({ namespace, name: SECRET }).catch(() => undefined);
const secretPem = (s: k8s.V1Secret | undefined) =>
  s?.data?.["ca.crt"] ? Buffer.from(s.data["ca.crt"], "base64").toString("utf8") : undefined;

/** Every copy of ours in the cluster, by namespace (what `kubectl get cm,secret -A -l …` shows). */
async function copies() {
  const cms = await core.listConfigMapForAllNamespaces({ labelSelector: OURS });
  const secrets = await core.listSecretForAllNamespaces({ labelSelector: OURS });
  return {
    configMaps: new Map(cms.items.map((c) => [c.metadata!.namespace!, c])),
    secrets: new Map(secrets.items.map((s) => [s.metadata!.namespace!, s])),
  };
}

async function eventsAbout(namespace: string, name: string, reason: string) {
  const list = await core.listNamespacedEvent({
    namespace,
    fieldSelector: `involvedObject.name=${name},reason=${reason}`,
  });
  return list.items;
}

/** `kubectl create configmap ca-distribution --from-literal=… --dry-run=client -o yaml | kubectl apply -f -` */
async function configure(data: Record<string, string>) {
  const literals = Object.entries(data).map(([key, v]) => `--from-literal=${key}=${v}`);
  const manifest = await k(
    "-n",
    CA_NS,
    "create",
    "configmap",
    "ca-distribution",
    ...literals,
    "--dry-run=client",
    "-o",
    "yaml",
  );
  const file = join(system.plane.dir, `ca-distribution-${++configured}.yaml`);
  await writeFile(file, manifest);
  await k("apply", "-f", file);
}
let configured = 0;

before(async () => {
  system = await startLocalSystem({
    // Created before the event sources start, so the burst measured below is the 200 label changes alone.
    beforeSources: async (kc) => {
      const c = kc.makeApiClient(k8s.CoreV1Api);
      await mapLimit(many, 16, (name) =>
        c.createNamespace({ body: { metadata: { name, labels: { "dist-test": "many" } } } }),
      );
    },
    log: (l) => console.log(`[local-system] ${l}`),
    functionEnv: { LOG_LEVEL: "info" },
  });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
});
after(() => system?.stop());

describe("CA distribution to namespaces (distribute-ca)", () => {
  it("least privilege: the distributor may not read the CA key or any Secret but its copy", async () => {
    const authz = system.kc.makeApiClient(k8s.AuthorizationV1Api);
    const can = async (sa: string, attrs: k8s.V1ResourceAttributes) =>
      Boolean(
        (
          await authz.createSubjectAccessReview({
            body: {
              spec: {
                user: `system:serviceaccount:${CA_NS}:${sa}`,
                groups: ["system:serviceaccounts", `system:serviceaccounts:${CA_NS}`, "system:authenticated"],
                resourceAttributes: attrs,
              },
            },
          })
        ).status?.allowed,
      );
    const rows: Array<[string, k8s.V1ResourceAttributes, boolean]> = [
      ["distribute-ca", { verb: "get", resource: "secrets", namespace: CA_NS, name: "signing-key" }, false],
      ["distribute-ca", { verb: "list", resource: "secrets" }, false],
      ["distribute-ca", { verb: "watch", resource: "secrets" }, false],
      ["distribute-ca", { verb: "get", resource: "secrets", namespace: "app", name: "web-tls" }, false],
      ["distribute-ca", { verb: "get", resource: "secrets", namespace: "app", name: SECRET }, true],
      ["distribute-ca", { verb: "list", resource: "secrets", name: SECRET }, true],
      ["distribute-ca", { verb: "delete", resource: "secrets", namespace: "app", name: SECRET }, true],
      ["distribute-ca", { verb: "delete", resource: "secrets", namespace: "app", name: "web-tls" }, false],
      ["distribute-ca", { verb: "create", resource: "secrets", namespace: "app" }, true],
      ["distribute-ca", { verb: "patch", resource: "configmaps", namespace: "app", name: COPY }, true],
      ["distribute-ca", { verb: "list", resource: "namespaces" }, true],
      ["distribute-ca", { verb: "patch", resource: "namespaces", name: "app" }, false],
      ["distribute-ca", { verb: "create", resource: "events", namespace: "app" }, true],
      ["source-namespaces", { verb: "watch", resource: "namespaces" }, true],
      ["source-namespaces", { verb: "get", resource: "secrets", namespace: "app", name: SECRET }, false],
      ["source-ca-copies", { verb: "watch", resource: "configmaps" }, true],
      ["source-ca-copies", { verb: "watch", resource: "secrets" }, false],
    ];
    const wrong: string[] = [];
    for (const [sa, attrs, allowed] of rows)
      if ((await can(sa, attrs)) !== allowed)
        wrong.push(`${sa} ${attrs.verb} ${attrs.resource} ${attrs.namespace ?? "*"}/${attrs.name ?? "*"}`);
    assert.deepEqual(wrong, []);
  });

  it("an invalid configuration → an Event on it explaining why, and nothing is written", async () => {
    await k("create", "namespace", "dist-probe");
    await k("label", "namespace", "dist-probe", SELECTED);
    await configure({ namespaceSelector: "ca-bundle in (wanted", secret: "sometimes" });
    const [event] = await waitFor(
      "an InvalidCADistributionConfig Event",
      async () => {
        const evs = await eventsAbout(CA_NS, "ca-distribution", "InvalidCADistributionConfig");
        return evs.length ? evs : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    console.log(`    Event: ${event!.message}`);
    assert.equal(event!.type, "Warning");
    assert.match(event!.message!, /namespaceSelector: unbalanced parentheses/);
    assert.match(event!.message!, /secret: must be "true" or "false"/);
    // The Event is recorded by the sweep that then stops: nothing can have been written before or after it.
    const found = await copies();
    assert.equal(found.configMaps.size + found.secrets.size, 0);
    assert.equal(await readCopy("dist-probe"), undefined);
  });

  it("enabled with a label selector: labelled namespaces get a ConfigMap and a Secret; excluded ones, kube-system and the CA namespace get nothing; a user's same-named ConfigMap is left alone with an Event", async () => {
    await k("create", "namespace", "dist-user");
    await k("create", "namespace", "dist-excluded");
    await k("label", "namespace", "dist-user", "dist-excluded", "kube-system", CA_NS, SELECTED);
    await k("-n", "dist-user", "create", "configmap", COPY, "--from-literal=service-ca.crt=my own bundle");
    userConfigMap = await core.readNamespacedConfigMap({ namespace: "dist-user", name: COPY });

    const started = performance.now();
    await configure({ namespaceSelector: SELECTED, exclude: "dist-excluded, other", secret: "true" });
    const pem = await bundle();
    await waitFor(
      "copies in dist-probe and dist-user",
      async () => {
        const probe = await readCopy("dist-probe");
        const [s1, s2] = await Promise.all([readSecretCopy("dist-probe"), readSecretCopy("dist-user")]);
        return probe?.data?.["service-ca.crt"] === pem && secretPem(s1) === pem && secretPem(s2) === pem
          ? true
          : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    console.log(`    configuration applied → copies in ${seconds(started)} s`);
    const probe = await readSecretCopy("dist-probe");
    assert.equal(probe!.type, "Opaque");

    const [event] = await waitFor(
      "a CABundleNotDistributed Event on the user's ConfigMap",
      async () => {
        const evs = await eventsAbout("dist-user", COPY, "CABundleNotDistributed");
        return evs.length ? evs : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    console.log(`    Event: ${event!.message}`);
    assert.match(event!.message!, /already exists and is not a copy made by service-ca-functions/);
    assert.equal(event!.involvedObject.uid, userConfigMap.metadata!.uid);
    assert.deepEqual(
      await core.readNamespacedConfigMap({ namespace: "dist-user", name: COPY }),
      userConfigMap,
    );

    const found = await copies();
    for (const ns of ["dist-excluded", "kube-system", CA_NS]) {
      assert.equal(found.configMaps.has(ns) || found.secrets.has(ns), false, `nothing in ${ns}`);
      assert.equal(await readCopy(ns), undefined, `no ${COPY} in ${ns}`);
    }
  });

  it(`${MANY} namespaces labelled → each gets both copies with the current bundle (Namespace events)`, async () => {
    const pem = await bundle();
    const started = performance.now();
    await k("label", "namespace", "-l", "dist-test=many", SELECTED);
    const labelled = performance.now();
    await waitFor(
      `copies in all ${MANY} namespaces`,
      async () => {
        const found = await copies();
        return many.every(
          (n) =>
            found.configMaps.get(n)?.data?.["service-ca.crt"] === pem &&
            secretPem(found.secrets.get(n)) === pem,
        )
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    console.log(
      `    ${MANY} namespaces: kubectl label took ${((labelled - started) / 1000).toFixed(2)} s; ` +
        `every ConfigMap and Secret present ${seconds(started)} s after it started`,
    );
  });

  it("a new namespace gets its copy within about a second", async () => {
    const started = performance.now();
    await core.createNamespace({
      body: { metadata: { name: "dist-new", labels: { "ca-bundle": "wanted" } } },
    });
    const cm = await waitFor("the copy in dist-new", () => readCopy("dist-new"), {
      timeoutMs: 15_000,
      intervalMs: 10,
    });
    console.log(`    new namespace → ConfigMap in ${Math.round(performance.now() - started)} ms`);
    assert.equal(cm.data?.["service-ca.crt"], await bundle());
    assert.equal(cm.metadata?.labels?.["service-ca-functions.dev/distributed"], "true");
  });

  it("a deleted or edited copy is restored (events on the copies)", async () => {
    const pem = await bundle();
    const before = await readCopy("dist-probe");
    await k("-n", "dist-probe", "delete", "configmap", COPY);
    await waitFor(
      "the re-created copy",
      async () => {
        const cm = await readCopy("dist-probe");
        return cm && cm.metadata!.uid !== before!.metadata!.uid && cm.data?.["service-ca.crt"] === pem
          ? cm
          : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    await k(
      "-n",
      "dist-probe",
      "patch",
      "secret",
      SECRET,
      "--type=merge",
      "-p",
      '{"stringData":{"ca.crt":"tampered","extra":"x"}}',
    );
    const restored = await waitFor(
      "the restored Secret",
      async () => {
        const s = await readSecretCopy("dist-probe");
        return secretPem(s) === pem && !s!.data!.extra ? s : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.deepEqual(Object.keys(restored.data!), ["ca.crt"]);
  });

  it("a forced rotation → every copy holds the new overlap bundle within seconds", async () => {
    await k("-n", CA_NS, "create", "serviceaccount", "ca-admin");
    await k(
      "-n",
      CA_NS,
      "create",
      "role",
      "ca-rotator",
      "--verb=update",
      "--resource=secrets",
      "--resource-name=signing-key",
    );
    await k(
      "-n",
      CA_NS,
      "create",
      "rolebinding",
      "ca-rotator",
      "--role=ca-rotator",
      `--serviceaccount=${CA_NS}:ca-admin`,
    );
    const token = (await k("-n", CA_NS, "create", "token", "ca-admin")).trim();
    const oldPem = await bundle();
    const started = performance.now();
    const res = await fetch(`${system.functions.get("rotate-ca")!.url}/rotate`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ reason: "distribution test" }),
    });
    assert.equal(res.status, 200, await res.clone().text());
    const rotated = performance.now();
    const pem = await bundle();
    assert.notEqual(pem, oldPem);
    assert.equal(decodeBundle(pem).length, 2, "the new CA and the previous one");
    const expected = MANY + 3; // dist-probe, dist-user (Secret only), dist-new
    await waitFor(
      "every copy on the new bundle",
      async () => {
        const found = await copies();
        const stale =
          [...found.configMaps.values()].filter((c) => c.data?.["service-ca.crt"] !== pem).length +
          [...found.secrets.values()].filter((s) => secretPem(s) !== pem).length;
        return stale === 0 && found.secrets.size === expected && found.configMaps.size === expected - 1
          ? true
          : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100 },
    );
    console.log(
      `    rotation: POST /rotate answered in ${((rotated - started) / 1000).toFixed(2)} s; all ` +
        `${2 * expected - 1} copies on the new bundle ${seconds(started)} s after the call`,
    );
    assert.deepEqual(
      await core.readNamespacedConfigMap({ namespace: "dist-user", name: COPY }),
      userConfigMap,
    );
  });

  it("the hourly ping's sweep finds everything current and writes nothing", async () => {
    const res = await deliver(
      system.functions.get("distribute-ca")!.url,
      pingEvent(CA_NS, "distribute-ca-hourly", { reason: "hourly repair" }),
      await sourceToken(system.kc, system.functions.get("distribute-ca")!.name),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const tally = res.json.tally as Record<string, number>;
    console.log(
      `    sweep: ${JSON.stringify({ namespaces: res.json.namespaces, selected: res.json.selected, tally })}`,
    );
    assert.deepEqual(
      {
        created: tally.created,
        updated: tally.updated,
        deleted: tally.deleted,
        failed: tally.failed,
        foreign: tally.foreign,
      },
      { created: 0, updated: 0, deleted: 0, failed: 0, foreign: 1 },
    );
    assert.equal(tally.current, 2 * (MANY + 3) - 1);
  });

  it("unlabelling a namespace removes our copies there, never the user's object", async () => {
    await k("label", "namespace", "dist-user", "dist-007", "ca-bundle-");
    await waitFor(
      "our copies gone from dist-user and dist-007",
      async () => {
        const gone = [
          await readSecretCopy("dist-user"),
          await readSecretCopy("dist-007"),
          await readCopy("dist-007"),
        ];
        return gone.every((o) => o === undefined) ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.deepEqual(
      await core.readNamespacedConfigMap({ namespace: "dist-user", name: COPY }),
      userConfigMap,
    );
  });

  it("an invalid configuration later: the copies stay exactly as they are and a new namespace gets nothing", async () => {
    const before = await copies();
    const earlier = (await eventsAbout(CA_NS, "ca-distribution", "InvalidCADistributionConfig")).length;
    await configure({ namespaceSelector: SELECTED, exclude: "Not_A_Namespace", secret: "true" });
    await waitFor(
      "a second InvalidCADistributionConfig Event",
      async () =>
        (await eventsAbout(CA_NS, "ca-distribution", "InvalidCADistributionConfig")).length > earlier
          ? true
          : undefined,
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    await core.createNamespace({
      body: { metadata: { name: "dist-late", labels: { "ca-bundle": "wanted" } } },
    });
    // The namespace's event has been handled (and refused) once its line is in the function's log.
    const log = join(system.plane.dir, "logs", "distribute-ca.log");
    await waitFor(
      "distribute-ca refusing the dist-late event",
      async () =>
        (await readFile(log, "utf8"))
          .split("\n")
          .find((l) => l.includes("request rejected") && l.includes("/namespaces/dist-late")),
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    assert.equal(await readCopy("dist-late"), undefined);
    const after = await copies();
    const versions = (c: Awaited<ReturnType<typeof copies>>) =>
      [...c.configMaps.values(), ...c.secrets.values()].map((o) => o.metadata!.resourceVersion).sort();
    assert.deepEqual(versions(after), versions(before));
  });

  it("distribution disabled → every copy of ours is removed, the user's ConfigMap stays", async () => {
    const started = performance.now();
    await configure({ enabled: "false" });
    await waitFor(
      "no copies left",
      async () => {
        const found = await copies();
        return found.configMaps.size + found.secrets.size === 0 ? true : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    console.log(`    disabled → ${2 * (MANY + 1)} copies removed in ${seconds(started)} s`);
    assert.deepEqual(
      await core.readNamespacedConfigMap({ namespace: "dist-user", name: COPY }),
      userConfigMap,
    );
  });
});
