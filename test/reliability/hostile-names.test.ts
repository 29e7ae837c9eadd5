// A hostile tenant (a ServiceAccount with the `admin` ClusterRole bound in its own namespace only, allowed to create
// CSRs) tries what the report of issue 14 did: certificates for names that are not its own, forged pings to burn a
// Service's failure budget, and annotation values that broke things. Each attempt fails with a clear answer; the
// legitimate flows still work.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import {
  apiServerEvent,
  deliver as deliverAs,
  pingEvent,
  sourceToken,
  type ObjectLike,
} from "../../dev/events.ts";
import { createNamespace } from "../support/namespaces.ts";
import { allowCsrRequests, kubectl } from "../support/kubectl.ts";
import { waitFor } from "../../dev/processes.ts";
import { serviceAccountKubeconfig, SYSTEM_NAMESPACE } from "../../dev/local-system/local-system.ts";
import { annotations } from "../../shared/names.ts";

const run = promisify(execFile);
const SIGNER = "service-ca.dev/serving";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let certificates: k8s.CertificatesV1Api;
let dir: string;
let tenant: string;
let victim: string;
let asTenant: { kubectl: string; kubeconfig: string };
const fns: Record<string, RunningFunction> = {};
const csrs: string[] = [];
const admin = () => ({ kubectl: cluster.kubectl, kubeconfig: cluster.kubeconfig });
const logOf = (fn: string) => join(dir, `${fn}.log`);
const figure = (line: string) => console.log(`reliability: ${line}`);
/** Delivered as `fn`'s own event sources deliver (their token): the attacks here are about what an event says. */
const deliver = async (fn: string, url: string, ev: { headers: Record<string, string>; body: string }) =>
  deliverAs(url, ev, await sourceToken(cluster.kc, fn));

async function start(fn: string, env: Record<string, string> = {}) {
  fns[fn] = await startFunction(fn, {
    kubeconfig: await functionKubeconfig(cluster, fn),
    env: { LOG_LEVEL: "info", ...env },
    logFile: logOf(fn),
  });
  return fns[fn];
}

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  certificates = cluster.kc.makeApiClient(k8s.CertificatesV1Api);
  dir = await mkdtemp(join(tmpdir(), "hostile-names-"));
  tenant = await createNamespace(cluster.kc, "tenant");
  victim = await createNamespace(cluster.kc, "victim");
  // The tenant: namespace admin in its own namespace only, and (cluster-scoped) may create and read CSRs.
  await kubectl(admin(), "-n", tenant, "create", "serviceaccount", "owner");
  await kubectl(
    admin(),
    "-n",
    tenant,
    "create",
    "rolebinding",
    "owner-admin",
    "--clusterrole=admin",
    `--serviceaccount=${tenant}:owner`,
  );
  await allowCsrRequests(admin(), `${tenant}-csr`, [`${tenant}:owner`]);
  asTenant = {
    kubectl: cluster.kubectl,
    kubeconfig: await serviceAccountKubeconfig(cluster, "owner", tenant),
  };
  await kubectl(asTenant, "-n", tenant, "create", "service", "clusterip", "web", "--tcp=443:8443");
  await kubectl(admin(), "-n", victim, "create", "service", "clusterip", "db", "--tcp=443:8443");
  // The CA exists as on an installed system (rotate-ca's first ping creates it if nothing has yet).
  const rotate = await start("rotate-ca");
  assert.equal(
    (await deliver("rotate-ca", rotate.url, pingEvent(SYSTEM_NAMESPACE, "rotate-ca-daily"))).status,
    200,
  );
  await rotate.process.stop();
  await Promise.all([start("sign-csr"), start("issue-serving-cert"), start("expiry-scan")]);
});

after(async () => {
  for (const f of Object.values(fns)) await f.process.stop().catch(() => {});
  if (dir) await rm(dir, { recursive: true, force: true });
  if (!cluster) return;
  for (const name of csrs) await certificates.deleteCertificateSigningRequest({ name }).catch(() => {});
  await kubectl(admin(), "delete", "clusterrolebinding,clusterrole", `${tenant}-csr`).catch(() => {});
});

/** `openssl req` for `sans` (e.g. DNS:x, IP:y), created as the tenant, approved by the admin, event delivered. */
async function approvedRequest(name: string, sans: string[]): Promise<k8s.V1CertificateSigningRequest> {
  await run(
    "openssl",
    [
      ...["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", "/O=system:masters"],
      ...["-addext", `subjectAltName=${sans.join(",")}`],
    ],
    { cwd: dir },
  );
  const manifest = {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name },
    spec: {
      request: (await readFile(join(dir, `${name}.csr`))).toString("base64"),
      signerName: SIGNER,
      usages: ["digital signature", "server auth"],
    },
  };
  await writeFile(join(dir, `${name}.json`), JSON.stringify(manifest));
  await kubectl(asTenant, "create", "-f", join(dir, `${name}.json`));
  csrs.push(name);
  await kubectl(admin(), "certificate", "approve", name);
  const ref: ObjectLike = {
    apiVersion: "certificates.k8s.io/v1",
    kind: "CertificateSigningRequest",
    metadata: { name },
  };
  const res = await deliver("sign-csr", fns["sign-csr"]!.url, apiServerEvent(ref, "update"));
  assert.equal(res.status, 200, JSON.stringify(res.json));
  return certificates.readCertificateSigningRequest({ name });
}

const eventsAbout = async (namespace: string, name: string) =>
  (await core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.name=${name}` })).items;

describe("a hostile tenant", () => {
  it("gets no certificate for a name outside the policy, even approved: Failed with the reason, and an Event", async () => {
    const hostile: Array<[string, string]> = [
      ["kubernetes.default.svc", "NameNotAllowed"],
      ["*.kube-system.svc", "NameNotAllowed"],
      ["*.cluster.local", "NameNotAllowed"],
      ["*.com", "NameNotAllowed"],
      ["localhost", "NameNotAllowed"],
      [`db.${victim}.svc`, "NameNotAllowed"],
      [`*.db.${victim}.svc.cluster.local`, "NameNotAllowed"],
      ["10.96.0.1", "NameNotAllowed"],
      ["web", "NameNotAllowed"],
    ];
    let i = 0;
    for (const [dns, reason] of hostile) {
      const name = `${tenant}-hostile-${i++}`;
      const csr = await approvedRequest(name, [`DNS:web.${tenant}.svc`, `DNS:${dns}`]);
      const failed = csr.status?.conditions?.find((c) => c.type === "Failed");
      assert.equal(failed?.reason, reason, `${dns}: ${JSON.stringify(csr.status)}`);
      assert.ok(failed.message!.includes(dns), failed.message);
      assert.equal(csr.status?.certificate, undefined, dns);
      const events = await eventsAbout("default", name);
      assert.ok(
        events.some(
          (e) => e.reason === "CertificateRefused" && e.type === "Warning" && e.message!.includes(dns),
        ),
        `${dns}: ${JSON.stringify(events.map((e) => e.message))}`,
      );
    }
    const ip = await approvedRequest(`${tenant}-hostile-ip`, [`DNS:web.${tenant}.svc`, "IP:10.96.0.1"]);
    assert.equal(ip.status?.conditions?.find((c) => c.type === "Failed")?.reason, "UnsupportedNames");
    assert.equal(ip.status?.certificate, undefined);
    figure(
      `sign-csr refused ${hostile.length + 1} approved hostile requests (Failed + a CertificateRefused Event each, 0 certificates)`,
    );
  });

  it("still gets its own Service's certificate, without O=system:masters", async () => {
    const csr = await approvedRequest(`${tenant}-own`, [
      `DNS:web.${tenant}.svc`,
      `DNS:web.${tenant}.svc.cluster.local`,
    ]);
    assert.ok(csr.status?.certificate, JSON.stringify(csr.status));
    const pem = Buffer.from(csr.status.certificate, "base64").toString();
    await writeFile(join(dir, "own.crt"), pem);
    const { stdout } = await run(
      "openssl",
      ["x509", "-in", "own.crt", "-noout", "-subject", "-ext", "subjectAltName"],
      { cwd: dir },
    );
    assert.match(
      stdout,
      new RegExp(`DNS:web\\.${tenant}\\.svc, DNS:web\\.${tenant}\\.svc\\.cluster\\.local`),
    );
    assert.doesNotMatch(stdout, /system:masters/);
  });

  it("cannot burn a Service's failure budget with pings; once the clash is gone the Service gets its certificate", async () => {
    await core.createNamespacedSecret({
      namespace: tenant,
      body: { metadata: { name: "taken" }, type: "Opaque", data: { k: Buffer.from("v").toString("base64") } },
    });
    await core.createNamespacedService({
      namespace: tenant,
      body: {
        metadata: { name: "clash", annotations: { [annotations.secretName]: "taken" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    const started = performance.now();
    for (let i = 0; i < 10; i++) {
      const res = await deliver(
        "expiry-scan",
        fns["expiry-scan"]!.url,
        pingEvent(SYSTEM_NAMESPACE, "expiry-scan-hourly"),
      );
      assert.equal(res.status, 200, JSON.stringify(res.json));
    }
    const seconds = (performance.now() - started) / 1000;
    const svc = await core.readNamespacedService({ namespace: tenant, name: "clash" });
    assert.equal(svc.metadata!.annotations![annotations.errorNum], "1", "one cause, counted once");
    assert.match(svc.metadata!.annotations![annotations.error]!, /was not created for this Service/);

    await core.deleteNamespacedSecret({ namespace: tenant, name: "taken" });
    const res = await deliver(
      "expiry-scan",
      fns["expiry-scan"]!.url,
      pingEvent(SYSTEM_NAMESPACE, "expiry-scan-hourly"),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const secret = await core.readNamespacedSecret({ namespace: tenant, name: "taken" });
    assert.equal(secret.type, "kubernetes.io/tls");
    const healed = (await core.readNamespacedService({ namespace: tenant, name: "clash" })).metadata!
      .annotations!;
    assert.equal(healed[annotations.errorNum], undefined);
    assert.equal(healed[annotations.error], undefined);
    figure(
      `10 pings (${seconds.toFixed(1)} s, each a whole scan) with a foreign Secret in the way: failure count 1, not given up; clash removed → Secret issued by the next scan`,
    );
  });

  it("twenty concurrent pings cost one scan; a ping inside SCAN_MIN_INTERVAL_SECONDS is answered from the last scan", async () => {
    const limited = await startFunction("expiry-scan", {
      kubeconfig: await functionKubeconfig(cluster, "expiry-scan"),
      env: { LOG_LEVEL: "info", SCAN_MIN_INTERVAL_SECONDS: "60" },
      logFile: logOf("expiry-scan-limited"),
    });
    try {
      const answers = await Promise.all(
        Array.from({ length: 20 }, () =>
          deliver("expiry-scan", limited.url, pingEvent(SYSTEM_NAMESPACE, "expiry-scan-hourly")),
        ),
      );
      assert.deepEqual(
        answers.map((a) => a.status),
        Array(20).fill(200),
      );
      const coalesced = answers.map((a) => a.json.coalesced ?? "scanned");
      assert.equal(coalesced.filter((c) => c === "scanned").length, 1, JSON.stringify(coalesced));
      const later = await deliver(
        "expiry-scan",
        limited.url,
        pingEvent(SYSTEM_NAMESPACE, "expiry-scan-hourly"),
      );
      assert.equal(later.json.coalesced, "rate-limited");
      const scans = (await readFile(logOf("expiry-scan-limited"), "utf8"))
        .split("\n")
        .filter((l) => l.includes('"scan summary"'));
      assert.equal(scans.length, 1);
      figure(
        `21 pings to one expiry-scan (SCAN_MIN_INTERVAL_SECONDS=60): 1 scan; ${coalesced.filter((c) => c === "joined").length} joined it, ${coalesced.filter((c) => c === "rate-limited").length + 1} answered from it afterwards`,
      );
    } finally {
      await limited.process.stop();
    }
  });

  it("an invalid Secret name gets the error annotation and an Event, not a 500; a 200 KB value makes no huge log line", async () => {
    const huge = "A".repeat(200_000);
    const cases = [
      ["slash", "a/b"],
      ["upper", "Web-TLS"],
      ["huge", huge],
    ] as const;
    for (const [name, secretName] of cases) {
      const svc = await core.createNamespacedService({
        namespace: tenant,
        body: {
          metadata: { name, annotations: { [annotations.secretName]: secretName } },
          spec: { ports: [{ port: 443 }] },
        },
      });
      for (let i = 0; i < 3; i++) {
        const res = await deliver(
          "issue-serving-cert",
          fns["issue-serving-cert"]!.url,
          apiServerEvent(
            { apiVersion: "v1", kind: "Service", metadata: { name, namespace: tenant } },
            "update",
          ),
        );
        assert.equal(res.status, 200, JSON.stringify(res.json).slice(0, 500));
        assert.equal(res.json.outcome, "invalid-secret-name");
      }
      const a = (await core.readNamespacedService({ namespace: tenant, name })).metadata!.annotations!;
      assert.match(a[annotations.error]!, /DNS-1123 subdomain/);
      assert.ok(a[annotations.error]!.length < 600, String(a[annotations.error]!.length));
      assert.equal(a[annotations.errorNum], "1", "three events, one cause");
      const events = await waitFor(`the Event on ${name}`, async () => {
        const list = await eventsAbout(tenant, name);
        return list.some((e) => e.reason === "InvalidServingCertSecretName") ? list : undefined;
      });
      assert.ok(events.every((e) => e.message!.length < 1100));
      assert.equal(svc.metadata!.name, name);
    }
    const lines = (await readFile(logOf("issue-serving-cert"), "utf8")).split("\n");
    const longest = Math.max(...lines.map((l) => Buffer.byteLength(l)));
    assert.ok(longest < 4096, `longest log line ${longest} bytes`);
    figure(
      `invalid Secret names (a/b, upper case, 200 KB): 200 with invalid-secret-name, the error annotation and an Event each (counted once over 3 events); longest issue-serving-cert log line ${longest} bytes`,
    );
  });
});
