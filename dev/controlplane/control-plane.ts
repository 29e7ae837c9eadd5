// A real control plane on loopback: etcd 3.5, kube-apiserver and kube-controller-manager built from their
// Go modules, with RBAC, ServiceAccount tokens, aggregator routing and an audit log of every write.
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort, spawnTied, waitFor, type Tied } from "../processes.ts";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export interface ControlPlane {
  dir: string;
  binDir: string;
  kubeconfig: string;
  kubectl: string;
  server: string;
  caFile: string;
  auditLog: string;
  serviceClusterIpRange: string;
  processes(): Tied[];
  /** Stops the API server alone (etcd and the controller manager keep running), for fault tests. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  keepDir?: boolean;
}

/** Builds (once, cached) and returns the directory holding etcd, kube-apiserver, kube-controller-manager, kubectl. */
export async function buildControlPlane(log: (line: string) => void = () => {}): Promise<string> {
  const started = Date.now();
  const child = execFile("bash", [join(here, "build-binaries.sh")], { maxBuffer: 64 << 20 });
  child.stderr?.on("data", (d: Buffer) => d.toString().split("\n").filter(Boolean).forEach(log));
  let stdout = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  const code = await new Promise<number | null>((res) => child.once("exit", res));
  if (code !== 0) throw new Error(`building the control plane failed (exit ${code})`);
  const bin = stdout.trim().split("\n").pop()!;
  const secs = (Date.now() - started) / 1000;
  if (secs > 5) log(`control plane binaries ready in ${secs.toFixed(1)} s`);
  return bin;
}

export async function startControlPlane(opts: StartOptions = {}): Promise<ControlPlane> {
  const log = opts.log ?? (() => {});
  const binDir = await buildControlPlane(log);
  const started = performance.now();
  const dir = await mkdtemp(join(tmpdir(), "service-ca-cp-"));
  const pki = join(dir, "pki");
  const logs = join(dir, "logs");
  await mkdir(pki);
  await mkdir(logs);
  await run("bash", [join(here, "make-certs.sh"), pki]);
  const [etcdPort, peerPort, apiPort] = await distinctFreePorts(3);
  const server = `https://127.0.0.1:${apiPort}`;
  const procs: Tied[] = [];
  const tied = (name: string, args: string[]) => {
    const p = spawnTied(name, join(binDir, name), args, { logFile: join(logs, `${name}.log`) });
    procs.push(p);
    return p;
  };
  const failedEarly = (p: Tied) => () =>
    p.running() ? undefined : `${p.name} exited; see ${join(logs, p.name + ".log")}`;

  let plane: ControlPlane | undefined;
  try {
    const etcd = tied("etcd", [
      "--name=default",
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=http://127.0.0.1:${etcdPort}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdPort}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--unsafe-no-fsync=true",
      "--log-level=warn",
    ]);
    await waitFor("etcd /health", () => httpOk(`http://127.0.0.1:${etcdPort}/health`), {
      failFast: failedEarly(etcd),
    });

    const auditPolicy = join(dir, "audit-policy.yaml");
    await writeFile(auditPolicy, auditPolicyYaml);
    const auditLog = join(logs, "audit.log");
    const serviceClusterIpRange = "10.96.0.0/16";
    const apiArgs = [
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--secure-port=${apiPort}`,
      `--etcd-servers=http://127.0.0.1:${etcdPort}`,
      `--tls-cert-file=${pki}/apiserver.crt`,
      `--tls-private-key-file=${pki}/apiserver.key`,
      `--client-ca-file=${pki}/ca.crt`,
      `--service-account-issuer=https://kubernetes.default.svc`,
      `--service-account-key-file=${pki}/sa.pub`,
      `--service-account-signing-key-file=${pki}/sa.key`,
      `--api-audiences=https://kubernetes.default.svc`,
      "--authorization-mode=Node,RBAC",
      "--enable-aggregator-routing=true",
      `--service-cluster-ip-range=${serviceClusterIpRange}`,
      "--endpoint-reconciler-type=none",
      "--allow-privileged=true",
      `--requestheader-client-ca-file=${pki}/front-proxy-ca.crt`,
      "--requestheader-allowed-names=front-proxy-client",
      "--requestheader-username-headers=X-Remote-User",
      "--requestheader-group-headers=X-Remote-Group",
      "--requestheader-extra-headers-prefix=X-Remote-Extra-",
      `--proxy-client-cert-file=${pki}/front-proxy-client.crt`,
      `--proxy-client-key-file=${pki}/front-proxy-client.key`,
      `--audit-policy-file=${auditPolicy}`,
      `--audit-log-path=${auditLog}`,
      "--audit-log-format=json",
      "--audit-log-maxsize=1024",
      `--cert-dir=${join(dir, "apiserver-certs")}`,
    ];
    let apiserver = tied("kube-apiserver", apiArgs);
    const clientTls = {
      ca: await readFile(`${pki}/ca.crt`),
      cert: await readFile(`${pki}/admin.crt`),
      key: await readFile(`${pki}/admin.key`),
    };
    const waitReady = () =>
      waitFor("kube-apiserver /readyz", () => httpsOk(`${server}/readyz`, clientTls), {
        timeoutMs: 90_000,
        failFast: failedEarly(apiserver),
      });
    await waitReady();

    const kubeconfig = join(dir, "kubeconfig");
    await writeFile(kubeconfig, kubeconfigYaml(server, pki, "admin", clientTls));
    const kcmKubeconfig = join(dir, "controller-manager.kubeconfig");
    await writeFile(
      kcmKubeconfig,
      kubeconfigYaml(server, pki, "controller-manager", {
        ca: clientTls.ca,
        cert: await readFile(`${pki}/controller-manager.crt`),
        key: await readFile(`${pki}/controller-manager.key`),
      }),
    );
    tied("kube-controller-manager", [
      `--kubeconfig=${kcmKubeconfig}`,
      `--authentication-kubeconfig=${kcmKubeconfig}`,
      `--authorization-kubeconfig=${kcmKubeconfig}`,
      "--secure-port=0",
      "--leader-elect=false",
      "--use-service-account-credentials=true",
      `--service-account-private-key-file=${pki}/sa.key`,
      `--root-ca-file=${pki}/ca.crt`,
      `--service-cluster-ip-range=${serviceClusterIpRange}`,
      "--controllers=*",
      "--concurrent-gc-syncs=20",
      "--concurrent-namespace-syncs=10",
    ]);
    log(`control plane ready in ${((performance.now() - started) / 1000).toFixed(2)} s (${server}, ${dir})`);

    plane = {
      dir,
      binDir,
      kubeconfig,
      kubectl: join(binDir, "kubectl"),
      server,
      caFile: `${pki}/ca.crt`,
      auditLog,
      serviceClusterIpRange,
      processes: () => procs.filter((p) => p.running()),
      stopApiServer: async () => {
        await apiserver.stop();
      },
      startApiServer: async () => {
        if (apiserver.running()) return;
        apiserver = tied("kube-apiserver", apiArgs);
        await waitReady();
      },
      stop: async () => {
        // Clients first, the store last, so nothing logs a storm of connection errors on the way down.
        for (const name of ["kube-controller-manager", "kube-apiserver", "etcd"]) {
          await Promise.all(procs.filter((p) => p.name === name).map((p) => p.stop()));
        }
        if (!opts.keepDir) await rm(dir, { recursive: true, force: true });
      },
    };
    return plane;
  } finally {
    if (!plane) {
      await Promise.all(procs.map((p) => p.stop(2000)));
      if (!opts.keepDir) log(`control plane failed to start; logs kept in ${logs}`);
    }
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function httpOk(url: string): Promise<true | undefined> {
  return new Promise((resolve) => {
    const req = httpGet(url, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? true : undefined);
    });
    req.on("error", () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
  });
}

function httpsOk(url: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<true | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { ...tls, method: "GET" }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 ? true : undefined);
    });
    req.on("error", () => resolve(undefined));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}

function kubeconfigYaml(
  server: string,
  _pki: string,
  user: string,
  tls: { ca: Buffer; cert: Buffer; key: Buffer },
) {
  const b64 = (b: Buffer) => b.toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(tls.ca)}
users:
- name: ${user}
  user:
    client-certificate-data: ${b64(tls.cert)}
    client-key-data: ${b64(tls.key)}
contexts:
- name: local
  context:
    cluster: local
    user: ${user}
current-context: local
`;
}

// Every write, with who made it: tests count writes from here rather than trusting the code under test.
const auditPolicyYaml = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  users: ["system:kube-controller-manager", "system:apiserver"]
- level: None
  userGroups: ["system:nodes", "system:serviceaccounts:kube-system"]
- level: Metadata
  verbs: ["create", "update", "patch", "delete", "deletecollection"]
- level: None
`;
