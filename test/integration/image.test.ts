// The image as users run it: `npm run image` twice gives one digest; its config says nonroot, read-only-safe,
// Node and the bundles only; skopeo and umoci read it; and runc runs its functions as a kubelet would (their own
// user, read-only root, no capabilities, the ServiceAccount token and CA mounted where client libraries look,
// KUBERNETES_SERVICE_HOST/PORT), which then serve real events against the API server with in-cluster credentials.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { createNamespace, ensureNamespace } from "../support/namespaces.ts";
import { opensslVerifies } from "../support/tls.ts";
import { auditMark, auditSince, serviceAccountUser, succeeded, writesBy } from "../../dev/audit.ts";
import { apiServerEvent, type ObjectLike } from "../../dev/events.ts";
import { freePort, waitFor } from "../../dev/processes.ts";
import { FUNCTION_PROCESS_ENV } from "../../dev/function-process-env.ts";
import {
  buildImage,
  commandOf,
  imageEntrypoint,
  NONROOT,
  NODE_IN_IMAGE,
  sourceDateEpochOfHead,
  type FunctionsImage,
} from "../../dev/image/service-image.ts";
import {
  runContainer,
  unpackImage,
  type RunningContainer,
  type UnpackedImage,
} from "../../dev/image/runc.ts";
import { functionNames } from "../../shared/host/functions.ts";
import { bundleFiles } from "../../scripts/build.ts";
import { annotations } from "../../shared/names.ts";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "../..");
const SYSTEM_NS = "service-ca";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let work: string;
let first: FunctionsImage;
let second: FunctionsImage;
let image: UnpackedImage;
let buildSeconds: number;
const containers: RunningContainer[] = [];

const has = (tool: string) => {
  try {
    execFileSync("which", [tool], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  await ensureNamespace(cluster.kc, SYSTEM_NS);
  work = await mkdtemp(join(tmpdir(), "scf-image-test-"));
  // One commit, one time: others may commit while this runs, and the label and mtimes follow the commit.
  const epoch = sourceDateEpochOfHead();
  const revision = execFileSync("git", ["rev-parse", "HEAD"], { cwd: repo, encoding: "utf8" }).trim();
  const started = performance.now();
  first = await buildImage({ outDir: join(work, "first"), epoch, revision });
  buildSeconds = (performance.now() - started) / 1000;
  second = await buildImage({ outDir: join(work, "second"), epoch, revision });
  image = await unpackImage(first.ociDir, first.tag, join(work, "rootfs"));
});

after(async () => {
  await Promise.all(containers.map((c) => c.remove(2000)));
  if (work) await rm(work, { recursive: true, force: true });
});

async function sha256(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(`/${relative(image.rootfs, p)}`);
  }
  return out;
}

/** The container spec infra/ gives a function (its Knative Service, as applied to this cluster): args, env, limits. */
async function deployedContainer(fn: string) {
  const ksvc = (await cluster.kc.makeApiClient(k8s.CustomObjectsApi).getNamespacedCustomObject({
    group: "serving.knative.dev",
    version: "v1",
    namespace: SYSTEM_NS,
    plural: "services",
    name: fn,
  })) as { spec: { template: { spec: { serviceAccountName: string; containers: k8s.V1Container[] } } } };
  const c = ksvc.spec.template.spec.containers[0]!;
  const env = Object.fromEntries(
    (c.env ?? []).filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]),
  );
  const memory = String(c.resources?.limits?.memory ?? "");
  const mi = /^(\d+)Mi$/.exec(memory);
  return {
    command: c.command,
    args: c.args ?? [],
    env,
    serviceAccount: ksvc.spec.template.spec.serviceAccountName,
    memoryLimit: mi ? Number(mi[1]) * 2 ** 20 : undefined,
    securityContext: c.securityContext,
  };
}

/** Runs `fn` from the image as its Knative Service says, with a fresh token of its ServiceAccount. */
async function startInContainer(fn: string) {
  const deployed = await deployedContainer(fn);
  const token = await core.createNamespacedServiceAccountToken({
    namespace: SYSTEM_NS,
    name: deployed.serviceAccount,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const jti = (
    JSON.parse(Buffer.from(token.status!.token.split(".")[1]!, "base64url").toString("utf8")) as {
      jti?: string;
    }
  ).jti;
  // The sender a Knative source would be: a ServiceAccount's token for the function's audience (the test names
  // its own sender and audience, as EVENT_SENDERS and EVENT_AUDIENCE allow, rather than Knative's OIDC accounts).
  const senderNs = await createNamespace(cluster.kc, "image-sender");
  await core.createNamespacedServiceAccount({ namespace: senderNs, body: { metadata: { name: "source" } } });
  const audience = `image-test/${fn}`;
  const senderToken = await core.createNamespacedServiceAccountToken({
    namespace: senderNs,
    name: "source",
    body: { spec: { audiences: [audience], expirationSeconds: 3600 } },
  });
  const port = await freePort();
  const server = new URL(cluster.server);
  const container = await runContainer({
    image,
    command: deployed.command,
    args: deployed.args,
    env: {
      ...deployed.env,
      PORT: String(port),
      LOG_LEVEL: "warn",
      EVENT_SENDERS: `${senderNs}/source`,
      EVENT_AUDIENCE: audience,
    },
    serviceAccount: {
      token: token.status!.token,
      caCrt: await readFile(cluster.caFile, "utf8"),
      namespace: SYSTEM_NS,
    },
    kubernetesService: { host: server.hostname, port: Number(server.port) },
    memoryLimit: deployed.memoryLimit,
    user: {
      uid: deployed.securityContext?.runAsUser ?? NONROOT,
      gid: deployed.securityContext?.runAsGroup ?? NONROOT,
    },
    hostname: `${fn}-00001-deployment-0`,
  });
  containers.push(container);
  let exit: number | undefined;
  void container.exited.then((code) => (exit = code));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    `${fn} in its container to become ready`,
    async () => ((await fetch(`${url}/health/readiness`)).ok ? true : undefined),
    {
      timeoutMs: 30_000,
      failFast: () => (exit === undefined ? undefined : `exited ${exit}: ${container.output().slice(-2000)}`),
      progressing: () => exit === undefined,
    },
  );
  // The Node flags it starts with are the ones the build wrote its code cache under, or every start compiles anew.
  assert.doesNotMatch(container.output(), /code cache rejected/);
  // POSTs an event as the source would, with its bearer token.
  const send = async (ev: { headers: Record<string, string>; body: string }) => {
    const headers = { ...ev.headers, authorization: `Bearer ${senderToken.status!.token}` };
    const res = await fetch(url, { method: "POST", headers, body: ev.body });
    return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  return {
    url,
    send,
    container,
    identity: { username: serviceAccountUser(deployed.serviceAccount), credentialId: `JTI=${jti}` },
  };
}

/** The container's process as the kernel sees it: its uids and how its root is mounted. */
async function processOf(container: RunningContainer) {
  const { stdout } = await run("runc", ["--root", container.stateDir, "state", container.id]);
  const pid = (JSON.parse(stdout) as { pid: number }).pid;
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const uids = /^Uid:\s+(.+)$/m.exec(status)![1]!.split(/\s+/).map(Number);
  const capEff = /^CapEff:\s+(\S+)$/m.exec(status)![1]!;
  const rootMount = (await readFile(`/proc/${pid}/mountinfo`, "utf8"))
    .split("\n")
    .map((l) => l.split(" "))
    .find((f) => f[4] === "/")!;
  return {
    uids,
    capEff,
    rootOptions: rootMount[5]!.split(","),
    cmdline: (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0"),
  };
}

describe("the image", () => {
  it("the same commit builds the same image twice: one digest, one archive", async () => {
    console.log(
      `# image ${first.name} ${first.digest}, ${(first.compressedSize / 1e6).toFixed(1)} MB compressed, built in ${buildSeconds.toFixed(1)} s`,
    );
    assert.equal(second.digest, first.digest);
    assert.equal(await sha256(second.archive), await sha256(first.archive));
  });

  it("runs as 65532 from Node and the bundles alone, small enough to pull quickly", async () => {
    const c = image.config;
    assert.equal(c.User, `${NONROOT}:${NONROOT}`);
    assert.deepEqual(c.Entrypoint, [NODE_IN_IMAGE, "/app/main.mjs"]);
    assert.equal(c.WorkingDir, "/app");
    // The Containerfile's image starts the same way.
    const containerfile = await readFile(join(repo, "Containerfile"), "utf8");
    assert.deepEqual(JSON.parse(/^ENTRYPOINT (.+)$/m.exec(containerfile)![1]!), c.Entrypoint);
    assert.ok(c.Env?.includes("NODE_ENV=production"));
    // The memory settings the benchmarks measured the functions with (dev/function-process-env.ts).
    for (const [k, v] of Object.entries(FUNCTION_PROCESS_ENV)) assert.ok(c.Env?.includes(`${k}=${v}`), k);
    assert.equal(c.Labels?.["org.opencontainers.image.revision"], first.revision);
    assert.equal(c.Labels?.["org.opencontainers.image.version"], first.name.split(":").pop());
    assert.ok(first.compressedSize < 80e6, `${first.compressedSize} bytes compressed`);

    const files = await filesUnder(image.rootfs);
    assert.deepEqual(
      files.filter((f) => /npm|npx|tsx|typescript|node_modules|\.ts$/.test(f)),
      [],
    );
    assert.deepEqual(
      files.filter((f) => f.startsWith("/app/")).sort(),
      [
        "/app/main.mjs",
        ...functionNames().flatMap((f) => bundleFiles(f).map((b) => `/app/functions/${b}`)),
      ].sort(),
    );
    const passwd = await readFile(join(image.rootfs, "etc/passwd"), "utf8");
    assert.match(passwd, new RegExp(`^nonroot:x:${NONROOT}:${NONROOT}:`, "m"));
    const certs = await readFile(join(image.rootfs, "etc/ssl/certs/ca-certificates.crt"), "utf8");
    assert.ok((certs.match(/BEGIN CERTIFICATE/g) ?? []).length > 100);
  });

  it(
    "skopeo and umoci read the layout and the archive",
    {
      skip: !has("skopeo") || !has("umoci") ? "needs skopeo and umoci (apt-get install skopeo umoci)" : false,
    },
    async () => {
      const oci = `oci:${first.ociDir}:${first.tag}`;
      const inspected = JSON.parse((await run("skopeo", ["inspect", oci])).stdout) as {
        Digest: string;
        Layers: string[];
      };
      assert.equal(inspected.Digest, first.digest);
      await run("skopeo", ["copy", "-q", oci, `docker-archive:${join(work, "copied.tar")}:${first.name}`]);
      const fromArchive = JSON.parse(
        (await run("skopeo", ["inspect", `docker-archive:${first.archive}`])).stdout,
      ) as {
        Layers: string[];
      };
      assert.equal(fromArchive.Layers.length, inspected.Layers.length);
      await run("umoci", ["unpack", "--image", `${first.ociDir}:${first.tag}`, join(work, "umoci")]);
      const umociConfig = JSON.parse(await readFile(join(work, "umoci", "config.json"), "utf8")) as {
        process: { user: { uid: number }; args: string[] };
      };
      assert.equal(umociConfig.process.user.uid, NONROOT);
      assert.deepEqual(umociConfig.process.args, imageEntrypoint);
    },
  );
});

describe("the image run by runc as a kubelet runs it", () => {
  const once = async (args: string[]) => {
    const c = await runContainer({ image, args });
    containers.push(c);
    const code = await c.exited;
    return { code, output: c.output() };
  };

  it("--help lists the functions; an unknown one exits 2; a function's --help lists its settings", async () => {
    const help = await once(["--help"]);
    assert.equal(help.code, 0, help.output);
    for (const fn of functionNames()) assert.match(help.output, new RegExp(`^  ${fn}$`, "m"));
    const unknown = await once(["no-such-function"]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.output, /unknown function "no-such-function"/);
    // With no argument, FUNCTION names the function (func.yaml's run.envs; func deploy passes no arguments).
    const byEnv = await runContainer({ image, args: [], env: { FUNCTION: "no-such-function" } });
    containers.push(byEnv);
    assert.equal(await byEnv.exited, 2);
    assert.match(byEnv.output(), /unknown function "no-such-function"/);
    const fnHelp = await once(["issue-serving-cert", "--help"]);
    assert.equal(fnHelp.code, 0, fnHelp.output);
    assert.match(fnHelp.output, /CA_NAMESPACE/);
  });

  it("issue-serving-cert: annotate a Service → its Secret, written with the mounted ServiceAccount token", async () => {
    const fn = await startInContainer("issue-serving-cert");
    const proc = await processOf(fn.container);
    assert.deepEqual(proc.uids, [NONROOT, NONROOT, NONROOT, NONROOT]);
    assert.equal(BigInt(`0x${proc.capEff}`), 0n);
    assert.ok(proc.rootOptions.includes("ro"), `root mounted ${proc.rootOptions.join(",")}`);
    // Its container's command from infra/: Node with the issuer's own flags (dev/function-process-env.ts).
    const command = commandOf("issue-serving-cert");
    assert.notDeepEqual(command, imageEntrypoint);
    assert.deepEqual(proc.cmdline.slice(0, command.length + 1), [...command, "issue-serving-cert"]);

    const ns = await createNamespace(cluster.kc, "image");
    const svc = await core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: "web", annotations: { [annotations.secretName]: "web-tls" } },
        spec: { ports: [{ port: 443 }] },
      },
    });
    const mark = await auditMark(cluster);
    const res = await fn.send(
      apiServerEvent({ ...svc, apiVersion: "v1", kind: "Service" } as unknown as ObjectLike, "add"),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    assert.equal(res.json.outcome, "issued");

    const secret = await core.readNamespacedSecret({ namespace: ns, name: "web-tls" });
    const crt = Buffer.from(secret.data!["tls.crt"]!, "base64").toString("utf8");
    const bundle = (await core.readNamespacedConfigMap({ namespace: SYSTEM_NS, name: "signing-cabundle" }))
      .data!["ca-bundle.crt"]!;
    assert.ok(await opensslVerifies(bundle, crt), "openssl verify of the served chain");
    const created = writesBy(await auditSince(cluster, mark), fn.identity).filter(
      (e) => e.verb === "create" && e.objectRef?.resource === "secrets" && e.objectRef.name === "web-tls",
    );
    assert.equal(created.filter(succeeded).length, 1, "the Secret was created with the mounted token");
  });

  it("inject-configmap: annotate a ConfigMap → the CA bundle in it", async () => {
    const fn = await startInContainer("inject-configmap");
    const ns = await createNamespace(cluster.kc, "image-inject");
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: {
        metadata: { name: "trust", annotations: { [annotations.injectCaBundle]: "true" } },
        data: { other: "kept" },
      },
    });
    const res = await fn.send(
      apiServerEvent({ ...cm, apiVersion: "v1", kind: "ConfigMap" } as unknown as ObjectLike, "add"),
    );
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const after = await core.readNamespacedConfigMap({ namespace: ns, name: "trust" });
    const bundle = (await core.readNamespacedConfigMap({ namespace: SYSTEM_NS, name: "signing-cabundle" }))
      .data!["ca-bundle.crt"]!;
    assert.equal(after.data?.["service-ca.crt"], bundle);
    assert.equal(after.data?.other, "kept");
  });
});
