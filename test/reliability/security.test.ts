// Security after a full run of the deployed system (Knative's adapters, every function under its own
// ServiceAccount): the CA private key appears in no log, no Kubernetes Event or object other than its Secret, and
// no HTTP answer; rotate-ca's admin endpoint answers as the API server's TokenReview and SubjectAccessReview say.
// (test/integration/rotation.test.ts covers 401/403/200 and the rotation itself; here the same token is refused,
// allowed and refused again as RBAC changes, and the reviews are seen in the audit log.)
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { startLocalSystem, SYSTEM_NAMESPACE, type LocalSystem } from "../../dev/local-system/local-system.ts";
import { apiServerEvent, deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { kubectl } from "../support/kubectl.ts";
import { waitFor } from "../../dev/processes.ts";
import { tokenWithRules, rotatorRules } from "../../dev/tokens.ts";
import { auditMark, auditSince, reviewsBy, serviceAccountUser } from "../../dev/audit.ts";
import { annotations } from "../../shared/names.ts";

const NS = "shop";
const INJECT = "service.beta.openshift.io/inject-cabundle";

let system: LocalSystem;
let core: k8s.CoreV1Api;
const cluster = () => ({ kubectl: system.plane.kubectl, kubeconfig: system.plane.kubeconfig });
/** Every HTTP answer this test received from a function, verbatim. */
const answers: string[] = [];
/** Every CA private key the system held during the run (PEM). */
const caKeys = new Map<string, string>();

before(async () => {
  system = await startLocalSystem({
    log: (l) => console.log(`[local-system] ${l}`),
    // The most a function ever logs.
    functionEnv: { LOG_LEVEL: "debug" },
  });
  core = system.kc.makeApiClient(k8s.CoreV1Api);
});
after(() => system?.stop());

const url = (fn: string) => system.functions.get(fn)!.url;

async function call(fn: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${url(fn)}${path}`, init);
  const text = await res.text();
  answers.push(text);
  return { status: res.status, text, json: JSON.parse(text) as Record<string, unknown> };
}

async function remember(label: string) {
  const s = await core.readNamespacedSecret({ namespace: SYSTEM_NAMESPACE, name: "signing-key" });
  caKeys.set(label, Buffer.from(s.data!["tls.key"]!, "base64").toString("utf8"));
}

const waitForSecret = (name: string, ok: (s: k8s.V1Secret) => boolean = () => true) =>
  waitFor(
    `Secret ${NS}/${name}`,
    async () => {
      const s = await core.readNamespacedSecret({ namespace: NS, name }).catch(() => undefined);
      return s && ok(s) ? s : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100 },
  );

describe("security after a full run", () => {
  it("a session: annotations, a refused Secret name, injections, bad events, a forced rotation and its fan-out", async () => {
    await kubectl(cluster(), "create", "namespace", NS);
    await kubectl(
      cluster(),
      "-n",
      NS,
      "create",
      "secret",
      "generic",
      "taken",
      "--from-literal=password=hunter2",
    );
    for (const [name, extra] of [
      ["web", []],
      ["db", ["--clusterip=None"]],
      ["ec", []],
      ["conflict", []],
    ] as const)
      await kubectl(cluster(), "-n", NS, "create", "service", "clusterip", name, "--tcp=443:8443", ...extra);
    await kubectl(cluster(), "-n", NS, "annotate", "service", "web", `${annotations.secretName}=web-tls`);
    await kubectl(cluster(), "-n", NS, "annotate", "service", "db", `${annotations.secretName}=db-tls`);
    await kubectl(
      cluster(),
      "-n",
      NS,
      "annotate",
      "service",
      "ec",
      `${annotations.secretName}=ec-tls`,
      `${annotations.keyAlgorithm}=ecdsa-p256`,
    );
    await kubectl(cluster(), "-n", NS, "annotate", "service", "conflict", `${annotations.secretName}=taken`);
    await kubectl(cluster(), "-n", NS, "create", "configmap", "trust");
    await kubectl(cluster(), "-n", NS, "annotate", "configmap", "trust", `${INJECT}=true`);
    for (const name of ["web-tls", "db-tls", "ec-tls"]) await waitForSecret(name);
    await waitFor(
      "the conflict reported on the Service",
      async () =>
        (await core.readNamespacedService({ namespace: NS, name: "conflict" })).metadata?.annotations?.[
          annotations.error
        ],
      { timeoutMs: 30_000, intervalMs: 100 },
    );
    await remember("first CA");

    // Bad input and refusals, whose answers are grepped too.
    for (const fn of system.functions.keys()) {
      answers.push(
        JSON.stringify(
          (
            await deliver(
              url(fn),
              { headers: { "content-type": "application/json", "ce-specversion": "1.0" }, body: "{not json" },
              await sourceToken(system.kc, fn),
            )
          ).json,
        ),
      );
    }
    const caSecretEvent = apiServerEvent(
      { apiVersion: "v1", kind: "Secret", metadata: { namespace: SYSTEM_NAMESPACE, name: "signing-key" } },
      "update",
      "resource",
    );
    answers.push(
      JSON.stringify(
        (
          await deliver(
            url("issue-serving-cert"),
            caSecretEvent,
            await sourceToken(system.kc, "issue-serving-cert"),
          )
        ).json,
      ),
    );
    answers.push(
      JSON.stringify(
        (
          await deliver(
            url("rotate-ca"),
            pingEvent(SYSTEM_NAMESPACE, "rotate-ca-daily"),
            await sourceToken(system.kc, "rotate-ca"),
          )
        ).json,
      ),
    );

    // A forced rotation by a permitted caller; the fan-out runs through the adapters.
    const admin = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, "ca-admin", rotatorRules());
    const before = (await core.readNamespacedService({ namespace: NS, name: "web" })).metadata!.annotations![
      annotations.signedBy
    ];
    const dry = await call("rotate-ca", "/rotate", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ reason: "security test", dryRun: true }),
    });
    assert.equal(dry.status, 200, dry.text);
    const rotated = await call("rotate-ca", "/rotate", {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ reason: "security test" }),
    });
    assert.equal(rotated.status, 200, rotated.text);
    assert.equal(rotated.json.outcome, "rotated");
    await remember("second CA");
    const status = await call("rotate-ca", "/status", { headers: { authorization: `Bearer ${admin}` } });
    assert.equal(status.status, 200, status.text);
    for (const name of ["web", "db", "ec"])
      await waitFor(
        `${name} re-issued by the new CA`,
        async () => {
          const a = (await core.readNamespacedService({ namespace: NS, name })).metadata?.annotations ?? {};
          return a[annotations.signedBy] && a[annotations.signedBy] !== before ? true : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    const bundle = (
      await core.readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" })
    ).data!["ca-bundle.crt"]!;
    await waitFor(
      "the new bundle injected",
      async () =>
        (await core.readNamespacedConfigMap({ namespace: NS, name: "trust" })).data?.["service-ca.crt"] ===
        bundle
          ? true
          : undefined,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    assert.notEqual(caKeys.get("first CA"), caKeys.get("second CA"));
  });

  it("rotate-ca's admin endpoint: no token 401; the same token 403, then 200 once RBAC allows it, then 403 again", async () => {
    const mark = await auditMark(system.plane);
    const post = (token?: string) =>
      call("rotate-ca", "/rotate", {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(token ? { authorization: `Bearer ${token}` } : {}),
        },
        body: JSON.stringify({ reason: "security test", dryRun: true }),
      });
    const none = await post();
    assert.equal(none.status, 401, none.text);
    assert.equal((none.json.error as { kind: string }).kind, "unauthenticated");
    assert.equal((await call("rotate-ca", "/status")).status, 401);
    const forged = await post("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJl");
    assert.equal(forged.status, 401, "a token the API server did not issue");

    const token = await tokenWithRules(system.kc, SYSTEM_NAMESPACE, "ca-auditor", undefined);
    const refused = await post(token);
    assert.equal(refused.status, 403, refused.text);
    assert.match(
      (refused.json.error as { message: string }).message,
      /system:serviceaccount:service-ca:ca-auditor may not update secrets\/signing-key in service-ca/,
    );

    const rbac = system.kc.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: SYSTEM_NAMESPACE,
      body: { metadata: { name: "ca-auditor" }, rules: rotatorRules() },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: SYSTEM_NAMESPACE,
      body: {
        metadata: { name: "ca-auditor" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "ca-auditor" },
        subjects: [{ kind: "ServiceAccount", name: "ca-auditor", namespace: SYSTEM_NAMESPACE }],
      },
    });
    // RBAC changes reach the authorizer through its informer: the same token is allowed once they do.
    const allowed = await waitFor(
      "the granted right to take effect",
      async () => {
        const r = await post(token);
        return r.status === 200 ? r : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.equal(allowed.json.outcome, "dry-run");
    assert.equal(allowed.json.user, "system:serviceaccount:service-ca:ca-auditor");

    await rbac.deleteNamespacedRoleBinding({ namespace: SYSTEM_NAMESPACE, name: "ca-auditor" });
    await waitFor(
      "the revoked right to take effect",
      async () => ((await post(token)).status === 403 ? true : undefined),
      { timeoutMs: 10_000, intervalMs: 100 },
    );

    const reviews = reviewsBy(await auditSince({ auditLog: system.plane.auditLog, kc: system.kc }, mark), {
      username: serviceAccountUser("rotate-ca"),
    });
    const kinds = new Set(reviews.map((e) => e.objectRef?.resource));
    assert.ok(kinds.has("tokenreviews") && kinds.has("subjectaccessreviews"), [...kinds].join(", "));
    console.log(
      `reliability: security admin endpoint: no token 401, forged token 401, unprivileged token 403 naming the missing right, same token 200 after a RoleBinding and 403 after its removal; rotate-ca asked the API server ${reviews.filter((e) => e.objectRef?.resource === "tokenreviews").length} TokenReviews and ${reviews.filter((e) => e.objectRef?.resource === "subjectaccessreviews").length} SubjectAccessReviews`,
    );
  });

  it("no CA private key in any log, Kubernetes Event, API object (other than its Secret) or HTTP answer", async () => {
    assert.equal(caKeys.size, 2, "the keys of both CAs of the run");
    const needles: Array<{ what: string; text: string }> = [];
    for (const [label, pem] of caKeys) {
      const lines = pem.split("\n").filter((l) => l && !l.startsWith("-----"));
      const der = lines.join("");
      const jwk = createPrivateKey(pem).export({ format: "jwk" }) as { d?: string };
      const pemB64 = Buffer.from(pem).toString("base64");
      needles.push(
        { what: `${label}: PEM body (DER base64)`, text: der },
        { what: `${label}: a 64-character line of the PEM`, text: lines[Math.floor(lines.length / 2)]! },
        { what: `${label}: base64 of the PEM, as in Secret data`, text: pemB64.slice(200, 264) },
        { what: `${label}: DER in hex`, text: Buffer.from(der, "base64").toString("hex").slice(400, 464) },
        { what: `${label}: private exponent (JWK d)`, text: jwk.d!.slice(20, 84) },
      );
    }
    const haystacks: Array<{ where: string; text: string }> = [];
    // Every log: functions, event source adapters, etcd, kube-apiserver, controller manager, the audit log.
    const logDir = join(system.plane.dir, "logs");
    for (const f of await readdir(logDir))
      haystacks.push({ where: `log ${f}`, text: await readFile(join(logDir, f), "utf8") });
    haystacks.push({
      where: "Kubernetes Events",
      text: await kubectl(cluster(), "get", "events", "-A", "-o", "json"),
    });
    // Error messages live on objects too (annotations, status): everything readable but Secrets.
    for (const kind of [
      "services",
      "configmaps",
      "validatingwebhookconfigurations",
      "mutatingwebhookconfigurations",
      "apiservices",
      "customresourcedefinitions",
      "certificatesigningrequests",
      "apiserversources",
      "pingsources",
    ])
      haystacks.push({ where: kind, text: await kubectl(cluster(), "get", kind, "-A", "-o", "json") });
    for (const [i, a] of answers.entries()) haystacks.push({ where: `HTTP answer ${i}`, text: a });

    // The search works: every needle is found where the key does live.
    const caSecret = await kubectl(
      cluster(),
      "-n",
      SYSTEM_NAMESPACE,
      "get",
      "secret",
      "signing-key",
      "-o",
      "json",
    );
    // The key as Node itself encodes it (DER base64 and hex, JWK), not as the needles were cut from the PEM.
    const current = createPrivateKey(caKeys.get("second CA")!);
    const type = caKeys.get("second CA")!.includes("BEGIN RSA PRIVATE KEY") ? "pkcs1" : "pkcs8";
    const der = current.export({ type, format: "der" });
    const control = [
      caSecret,
      der.toString("base64"),
      der.toString("hex"),
      JSON.stringify(current.export({ format: "jwk" })),
    ].join("\n");
    for (const n of needles.filter((n) => n.what.startsWith("second CA")))
      assert.ok(control.includes(n.text), `control: ${n.what} is found in the CA Secret or the key itself`);

    const hits: string[] = [];
    for (const h of haystacks)
      for (const n of needles) if (h.text.includes(n.text)) hits.push(`${n.what} in ${h.where}`);
    assert.deepEqual(hits, []);
    const bytes = haystacks.reduce((n, h) => n + h.text.length, 0);
    const logs = haystacks.filter((h) => h.where.startsWith("log ")).length;
    console.log(
      `reliability: security key leak search: ${caKeys.size} CA keys × ${needles.length / caKeys.size} forms (PEM body, PEM line, base64 of PEM, DER hex, JWK d) in ${logs} log files, all Events, 9 kinds of objects and ${answers.length} HTTP answers (${(bytes / 1e6).toFixed(1)} MB): 0 hits; the same search finds every form in the CA Secret or in Node's own encodings of the key`,
    );
  });
});
