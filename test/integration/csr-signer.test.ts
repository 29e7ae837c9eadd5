// "Ask the cluster for a serving certificate with a CertificateSigningRequest": `openssl req`, `kubectl create -f` as a
// ServiceAccount, approval → Knative's ApiServerSource adapter → sign-csr (its own ServiceAccount) → status.certificate.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { deliver, sourceToken, pingEvent } from "../../dev/events.ts";
import { createNamespace } from "../support/namespaces.ts";
import { allowCsrRequests, kubectl } from "../support/kubectl.ts";
import { freePort, spawnTied, waitFor, type Tied } from "../../dev/processes.ts";
import { handshake } from "../support/tls.ts";
import {
  adapterEnv,
  serviceAccountKubeconfig,
  SYSTEM_NAMESPACE,
  type ApiServerSource,
} from "../../dev/local-system/local-system.ts";

const run = promisify(execFile);
const SIGNER = "service-ca.dev/serving";
const SERVING = ["digital signature", "key encipherment", "server auth"];

let cluster: TestCluster;
let certificates: k8s.CertificatesV1Api;
let dir: string;
let ns: string;
let other: string;
let asWeb: { kubectl: string; kubeconfig: string };
let asReader: { kubectl: string; kubeconfig: string };
let signerPort: number;
let signer: RunningFunction | undefined;
let source: Tied | undefined;
const created: string[] = [];

const admin = () => ({ kubectl: cluster.kubectl, kubeconfig: cluster.kubeconfig });
const signerLog = () => join(dir, "sign-csr.log");

async function startSigner(autoApprove: boolean) {
  signer = await startFunction("sign-csr", {
    kubeconfig: await functionKubeconfig(cluster, "sign-csr"),
    env: {
      LOG_LEVEL: "info",
      AUTO_APPROVE: String(autoApprove),
      // The cluster admin (a person, not a ServiceAccount) gets this namespace's Service names, and nothing else.
      CSR_ALLOWED_NAMES: JSON.stringify([{ users: ["admin"], namespaces: [ns] }]),
    },
    logFile: signerLog(),
    port: signerPort,
  });
}

/** Knative's own adapter for the `certificatesigningrequests` ApiServerSource of infra/, as its ServiceAccount. */
async function startCsrSource(sink: string): Promise<Tied> {
  const co = cluster.kc.makeApiClient(k8s.CustomObjectsApi);
  const src = (await co.getNamespacedCustomObject({
    group: "sources.knative.dev",
    version: "v1",
    namespace: SYSTEM_NAMESPACE,
    plural: "apiserversources",
    name: "certificatesigningrequests",
  })) as ApiServerSource;
  return spawnTied(
    "apiserversource/certificatesigningrequests",
    join(dirname(cluster.kubectl), "apiserver_receive_adapter"),
    ["--kubeconfig", await serviceAccountKubeconfig(cluster, src.spec.serviceAccountName)],
    {
      env: { ...process.env, ...adapterEnv(src, sink, String(await freePort())) },
      logFile: join(dir, "csr-source.log"),
    },
  );
}

/** What sign-csr answered for events about CSR `name` (from its request log). */
async function handled(name: string): Promise<Array<Record<string, unknown>>> {
  const log = await readFile(signerLog(), "utf8").catch(() => "");
  return log
    .split("\n")
    .filter((l) => l.includes('"request handled"') && l.includes(`/${name}"`))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `openssl req` for the names, then `kubectl create -f` as `who`: the user's side of the flow. */
async function requestCertificate(
  name: string,
  names: string[],
  opts: { who?: { kubectl: string; kubeconfig: string }; usages?: string[]; expirationSeconds?: number } = {},
): Promise<string> {
  await run(
    "openssl",
    [
      ...["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`],
      ...["-subj", `/CN=${names[0]}`, "-addext", `subjectAltName=${names.map((n) => `DNS:${n}`).join(",")}`],
    ],
    { cwd: dir },
  );
  const request = (await readFile(join(dir, `${name}.csr`))).toString("base64");
  const manifest = {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name },
    spec: {
      request,
      signerName: SIGNER,
      usages: opts.usages ?? SERVING,
      ...(opts.expirationSeconds ? { expirationSeconds: opts.expirationSeconds } : {}),
    },
  };
  await writeFile(join(dir, `${name}.yaml`), JSON.stringify(manifest));
  await kubectl(opts.who ?? asWeb, "create", "-f", join(dir, `${name}.yaml`));
  created.push(name);
  return join(dir, `${name}.key`);
}

const readCsr = (name: string) => certificates.readCertificateSigningRequest({ name });
const condition = (csr: k8s.V1CertificateSigningRequest, type: string) =>
  csr.status?.conditions?.find((c) => c.type === type);

function waitForCsr(name: string, what: string, done: (csr: k8s.V1CertificateSigningRequest) => boolean) {
  return waitFor(
    `CSR ${name}: ${what}`,
    async () => {
      const csr = await readCsr(name);
      return done(csr) ? csr : undefined;
    },
    { timeoutMs: 15_000, intervalMs: 50 },
  );
}

/** The issued certificate as a user gets it, written next to its key. */
async function issuedCertificate(name: string): Promise<string> {
  await waitForCsr(name, "a certificate", (c) => Boolean(c.status?.certificate));
  const b64 = await kubectl(admin(), "get", "csr", name, "-o", "jsonpath={.status.certificate}");
  const pem = Buffer.from(b64, "base64").toString("utf8");
  await writeFile(join(dir, `${name}.crt`), pem);
  return pem;
}

async function publishedBundle(): Promise<string> {
  const cm = await cluster.kc
    .makeApiClient(k8s.CoreV1Api)
    .readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" });
  const bundle = cm.data!["ca-bundle.crt"]!;
  await writeFile(join(dir, "bundle.crt"), bundle);
  return bundle;
}

const openssl = async (...args: string[]) => {
  const { stdout, stderr } = await run("openssl", args, { cwd: dir });
  return stdout + stderr;
};

before(async () => {
  cluster = await testCluster();
  certificates = cluster.kc.makeApiClient(k8s.CertificatesV1Api);
  dir = await mkdtemp(join(tmpdir(), "csr-signer-"));
  await ensureCa();
  ns = await createNamespace(cluster.kc, "csr");
  other = await createNamespace(cluster.kc, "csr-other");
  await kubectl(admin(), "-n", ns, "create", "service", "clusterip", "web", "--tcp=443:8443");
  await kubectl(admin(), "-n", other, "create", "service", "clusterip", "db", "--tcp=443:8443");
  // Two workloads: web may update its Service, reader may not. Both may create CSRs (cluster-scoped).
  await kubectl(admin(), "-n", ns, "create", "serviceaccount", "web");
  await kubectl(admin(), "-n", ns, "create", "serviceaccount", "reader");
  await allowCsrRequests(admin(), `${ns}-csr-requester`, [`${ns}:web`, `${ns}:reader`]);
  await kubectl(
    admin(),
    "-n",
    ns,
    "create",
    "role",
    "service-editor",
    "--verb=get,update",
    "--resource=services",
  );
  await kubectl(
    admin(),
    "-n",
    ns,
    "create",
    "rolebinding",
    "service-editor",
    "--role=service-editor",
    `--serviceaccount=${ns}:web`,
  );
  asWeb = { kubectl: cluster.kubectl, kubeconfig: await serviceAccountKubeconfig(cluster, "web", ns) };
  asReader = { kubectl: cluster.kubectl, kubeconfig: await serviceAccountKubeconfig(cluster, "reader", ns) };

  signerPort = await freePort();
  await startSigner(false);
  await startSourceAndWait();
});

let sourceStarts = 0;
/**
 * Starts the CSR source and waits until its events arrive. The adapter sends nothing about objects that existed
 * before its watch began: touch a probe CSR of this start's own until one of its events arrives, so every CSR
 * the tests create afterwards is seen.
 */
async function startSourceAndWait() {
  source = await startCsrSource(signer!.url);
  const probe = `probe-${sourceStarts++}`;
  await requestCertificate(probe, [`web.${ns}.svc`], { who: admin() });
  let touch = 0;
  await waitFor(
    "the CSR source delivering events",
    async () => {
      await kubectl(admin(), "label", "csr", probe, `touch=${touch++}`, "--overwrite");
      return (await handled(probe)).length > 0 ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200 },
  );
}

after(async () => {
  await source?.stop(3000);
  await signer?.process.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
  if (!cluster) return;
  for (const name of created) await certificates.deleteCertificateSigningRequest({ name }).catch(() => {});
  await kubectl(admin(), "delete", "clusterrolebinding,clusterrole", `${ns}-csr-requester`).catch(() => {});
});

/** The CA exists as on an installed system: rotate-ca's first ping creates it if nothing else has yet. */
async function ensureCa() {
  const core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  const exists = await core
    .readNamespacedConfigMap({ namespace: SYSTEM_NAMESPACE, name: "signing-cabundle" })
    .then(
      () => true,
      () => false,
    );
  if (exists) return;
  const rotate = await startFunction("rotate-ca", {
    kubeconfig: await functionKubeconfig(cluster, "rotate-ca"),
    env: { LOG_LEVEL: "warn" },
  });
  try {
    const res = await deliver(
      rotate.url,
      pingEvent(SYSTEM_NAMESPACE, "rotate-ca-daily"),
      await sourceToken(cluster.kc, rotate.name),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
  } finally {
    await rotate.process.stop();
  }
}

describe("sign-csr (signerName service-ca.dev/serving), manual approval", () => {
  it("openssl req → kubectl create as a ServiceAccount → kubectl certificate approve → a certificate openssl verifies against the bundle", async () => {
    const names = [`web.${ns}.svc`, `web.${ns}.svc.cluster.local`];
    const key = await requestCertificate("web-manual", names, { expirationSeconds: 3600 });
    const pending = await readCsr("web-manual");
    assert.equal(pending.spec.username, `system:serviceaccount:${ns}:web`);
    await kubectl(admin(), "certificate", "approve", "web-manual");

    const pem = await issuedCertificate("web-manual");
    const bundle = await publishedBundle();
    assert.match(await openssl("verify", "-CAfile", "bundle.crt", "web-manual.crt"), /web-manual.crt: OK/);
    const text = await openssl("x509", "-in", "web-manual.crt", "-noout", "-text");
    assert.match(text, new RegExp(`DNS:web\\.${ns}\\.svc, DNS:web\\.${ns}\\.svc\\.cluster\\.local\\s*\\n`));
    assert.match(text, new RegExp(`Subject: CN ?= ?web\\.${ns}\\.svc\\n`));
    assert.match(text, /TLS Web Server Authentication/);
    assert.match(text, /Digital Signature, Key Encipherment/);
    assert.match(text, /CA:FALSE/);
    // spec.expirationSeconds: 3600 is honoured (the certificate starts a second early against clock skew).
    const dates = await openssl("x509", "-in", "web-manual.crt", "-noout", "-startdate", "-enddate");
    const [from, to] = [/notBefore=(.*)/, /notAfter=(.*)/].map((r) => Date.parse(r.exec(dates)![1]!));
    assert.ok(Math.abs((to! - from!) / 1000 - 3601) <= 2, dates);
    // It certifies the requester's key, and a TLS server with that key is trusted by clients of the bundle.
    assert.equal(
      await openssl("x509", "-in", "web-manual.crt", "-noout", "-pubkey"),
      await openssl("pkey", "-in", key, "-pubout"),
    );
    await handshake({ cert: pem, key: await readFile(key, "utf8"), ca: bundle, servername: names[1]! });

    // A duplicate event changes nothing: the CSR is re-read and found signed.
    const before = await readCsr("web-manual");
    await kubectl(admin(), "label", "csr", "web-manual", "seen=again");
    await waitFor("the duplicate handled", async () =>
      (await handled("web-manual")).some((h) => h.outcome === "already-signed") ? true : undefined,
    );
    assert.equal((await readCsr("web-manual")).status?.certificate, before.status?.certificate);
  });

  it("an unapproved CSR is never signed, by its events or by a sweep", async () => {
    await requestCertificate("web-unapproved", [`web.${ns}.svc`]);
    await waitFor("sign-csr to see the CSR", async () =>
      (await handled("web-unapproved")).some((h) => h.outcome === "awaiting-approval") ? true : undefined,
    );
    const sweep = await deliver(
      signer!.url,
      pingEvent(SYSTEM_NAMESPACE, "sign-csr-hourly"),
      await sourceToken(cluster.kc, signer!.name),
    );
    assert.equal(sweep.status, 200, JSON.stringify(sweep.json));
    const csr = await readCsr("web-unapproved");
    assert.equal(csr.status?.certificate, undefined);
    assert.deepEqual(csr.status?.conditions ?? [], []);
    await certificates.deleteCertificateSigningRequest({ name: "web-unapproved" });
  });

  it("an approved CSR naming what the requester may not claim gets Failed NameNotAllowed and an Event, and no certificate", async () => {
    await requestCertificate("web-apiserver", [`web.${ns}.svc`, "kubernetes.default.svc", `db.${other}.svc`]);
    await kubectl(admin(), "certificate", "approve", "web-apiserver");
    const csr = await waitForCsr("web-apiserver", "Failed", (c) => Boolean(condition(c, "Failed")));
    const failed = condition(csr, "Failed")!;
    assert.equal(failed.reason, "NameNotAllowed");
    assert.match(failed.message!, /; kubernetes\.default\.svc \(the API server's own names/);
    assert.match(failed.message!, new RegExp(`db\\.${other}\\.svc \\(not a Service name of ${ns}`));
    assert.doesNotMatch(failed.message!, new RegExp(`claim web\\.${ns}\\.svc`));
    assert.equal(csr.status?.certificate, undefined);
    const events = await kubectl(
      admin(),
      ...["get", "events", "-n", "default", "--field-selector", "involvedObject.name=web-apiserver"],
      ...["-o", 'jsonpath={range .items[*]}{.reason}: {.message}{"\\n"}{end}'],
    );
    assert.match(events, /CertificateRefused: NameNotAllowed: .*kubernetes\.default\.svc/);
    // Before approval the signer told the approver what was asked for, and that it would not sign it.
    assert.match(events, /CertificateRequested: will not be signed even if approved: NameNotAllowed/);
  });

  it("an approved CSR asking for client auth gets Failed with a reason, and no certificate", async () => {
    await requestCertificate("web-client-auth", [`web.${ns}.svc`], {
      usages: ["server auth", "client auth"],
    });
    await kubectl(admin(), "certificate", "approve", "web-client-auth");
    const csr = await waitForCsr("web-client-auth", "Failed", (c) => Boolean(condition(c, "Failed")));
    const failed = condition(csr, "Failed")!;
    assert.equal(failed.reason, "UnsupportedUsages");
    assert.match(failed.message!, /not allowed: "client auth"/);
    assert.equal(csr.status?.certificate, undefined);
    const shown = await kubectl(admin(), "get", "csr", "web-client-auth");
    assert.match(shown, /Approved,Failed/);
  });
});

describe("sign-csr with AUTO_APPROVE=true", () => {
  before(async () => {
    // Approved while sign-csr and its source were down: no event is ever sent for it (the source's adapter may
    // redeliver what it had seen, so it goes too), and only the sweep can find it.
    await source!.stop(3000);
    await signer!.process.stop();
    await requestCertificate("web-missed", [`web.${ns}.svc`]);
    await kubectl(admin(), "certificate", "approve", "web-missed");
    await startSigner(true);
    await startSourceAndWait();
  });

  it("a ping sweeps what events missed", async () => {
    assert.equal((await readCsr("web-missed")).status?.certificate, undefined);
    const sweep = await deliver(
      signer!.url,
      pingEvent(SYSTEM_NAMESPACE, "sign-csr-hourly"),
      await sourceToken(cluster.kc, signer!.name),
    );
    assert.equal(sweep.status, 200, JSON.stringify(sweep.json));
    assert.equal((sweep.json.outcomes as Record<string, number>).signed, 1, JSON.stringify(sweep.json));
    await issuedCertificate("web-missed");
    await publishedBundle();
    assert.match(await openssl("verify", "-CAfile", "bundle.crt", "web-missed.crt"), /OK/);
  });

  it("a ServiceAccount's CSR for its own Service (the .svc names and the wildcards) is approved and signed", async () => {
    const names = [
      `web.${ns}.svc`,
      `web.${ns}.svc.cluster.local`,
      `*.web.${ns}.svc`,
      `*.web.${ns}.svc.cluster.local`,
    ];
    await requestCertificate("web-auto", names);
    const csr = await waitForCsr("web-auto", "a certificate", (c) => Boolean(c.status?.certificate));
    const approved = condition(csr, "Approved")!;
    assert.equal(approved.reason, "AutoApproved");
    assert.match(
      approved.message!,
      new RegExp(`system:serviceaccount:${ns}:web may update Service ${ns}/web`),
    );
    await issuedCertificate("web-auto");
    await publishedBundle();
    assert.match(await openssl("verify", "-CAfile", "bundle.crt", "web-auto.crt"), /web-auto.crt: OK/);
    const text = await openssl("x509", "-in", "web-auto.crt", "-noout", "-text");
    for (const n of names)
      assert.match(text, new RegExp(`DNS:${n.replaceAll(".", "\\.").replaceAll("*", "\\*")}(,|\\s*\\n)`));
    // Without spec.expirationSeconds: the configured maximum, the serving-certificate validity (730 days).
    const dates = await openssl("x509", "-in", "web-auto.crt", "-noout", "-startdate", "-enddate");
    const [from, to] = [/notBefore=(.*)/, /notAfter=(.*)/].map((r) => Date.parse(r.exec(dates)![1]!));
    assert.ok(Math.abs((to! - from!) / 86_400_000 - 730) < 0.01, dates);
  });

  it("a CSR naming another namespace's Service is denied with the reason, and never signed", async () => {
    await requestCertificate("web-foreign", [`web.${ns}.svc`, `db.${other}.svc`]);
    const csr = await waitForCsr("web-foreign", "Denied", (c) => Boolean(condition(c, "Denied")));
    const denied = condition(csr, "Denied")!;
    assert.equal(denied.reason, "NameNotAllowed");
    assert.match(
      denied.message!,
      new RegExp(`may not claim db\\.${other}\\.svc \\(not a Service name of ${ns}\\b`),
    );
    assert.equal(condition(csr, "Approved"), undefined);
    assert.equal(csr.status?.certificate, undefined);
    assert.match(await kubectl(admin(), "get", "csr", "web-foreign"), /Denied/);
  });

  it("a requester that may not update the Service is denied (SubjectAccessReview)", async () => {
    await requestCertificate("reader-web", [`web.${ns}.svc`], { who: asReader });
    const csr = await waitForCsr("reader-web", "Denied", (c) => Boolean(condition(c, "Denied")));
    assert.equal(condition(csr, "Denied")!.reason, "NotAuthorized");
    assert.match(
      condition(csr, "Denied")!.message!,
      new RegExp(`system:serviceaccount:${ns}:reader may not update Service ${ns}/web`),
    );
  });

  it("short names are not the requester's to claim: denied, not approved", async () => {
    await requestCertificate("web-short", [`web.${ns}.svc`, `web.${ns}`, "web"]);
    const csr = await waitForCsr("web-short", "Denied", (c) => Boolean(condition(c, "Denied")));
    assert.equal(condition(csr, "Denied")!.reason, "NameNotAllowed");
    assert.match(
      condition(csr, "Denied")!.message!,
      new RegExp(`may not claim web \\(.*\\); web\\.${ns} \\(`),
    );
  });

  it("a request from a person is left to a human, and kubectl certificate approve still works", async () => {
    await requestCertificate("admin-web", [`web.${ns}.svc`], { who: admin() });
    await waitFor("sign-csr to leave it pending", async () =>
      (await handled("admin-web")).some((h) => h.outcome === "awaiting-approval") ? true : undefined,
    );
    assert.deepEqual((await readCsr("admin-web")).status?.conditions ?? [], []);
    await kubectl(admin(), "certificate", "approve", "admin-web");
    await issuedCertificate("admin-web");
    await publishedBundle();
    assert.match(await openssl("verify", "-CAfile", "bundle.crt", "admin-web.crt"), /OK/);
    // The approval does not widen CSR_ALLOWED_NAMES: the admin's rule names this namespace only.
    await requestCertificate("admin-other", [`db.${other}.svc`], { who: admin() });
    await kubectl(admin(), "certificate", "approve", "admin-other");
    const failed = await waitForCsr("admin-other", "Failed", (c) => Boolean(condition(c, "Failed")));
    assert.equal(condition(failed, "Failed")!.reason, "NameNotAllowed");
  });
});
