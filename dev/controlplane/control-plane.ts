// A real control plane on loopback: etcd 3.5, kube-apiserver and kube-controller-manager built from their
// Go modules, with RBAC, ServiceAccount tokens, aggregator routing and an audit log of every write. Given a node,
// the API server serves it instead from the node's address (see StartOptions.node), with kube-scheduler beside it.
import { execFile } from "node:child_process";
import { mkdtemp, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort, spawnTied, tailOf, waitFor, type Tied } from "../processes.ts";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export interface ControlPlane {
  dir: string;
  binDir: string;
  kubeconfig: string;
  kubectl: string;
  server: string;
  caFile: string;
  /** the PKI make-certs.sh wrote (ca.crt, client certificates, and with a node its kubelet certificates) */
  pkiDir: string;
  auditLog: string;
  serviceClusterIpRange: string;
  processes(): Tied[];
  /** Stops kube-scheduler and kube-controller-manager, so deleted pods are not replaced (a node's teardown). */
  stopControllers(): Promise<void>;
  /** Stops the API server alone (etcd and the controller manager keep running), for fault tests. */
  stopApiServer(): Promise<void>;
  startApiServer(): Promise<void>;
  stop(): Promise<void>;
}

export interface StartOptions {
  log?: (line: string) => void;
  keepDir?: boolean;
  /** Where the data, PKI and logs go (made if missing); by default a fresh temporary directory. */
  dir?: string;
  /**
   * A kubelet will register: the API server binds and advertises on the node's address (the `kubernetes`
   * Service's endpoint, so pods reach it through its ClusterIP), carries it among its SANs, admits the node
   * through NodeRestriction and calls the kubelet with a client certificate, checking the kubelet's serving
   * certificate against the cluster CA; kube-scheduler runs too.
   */
  node?: { name: string; address: string; port?: number };
  /** Called with each process as it starts (the node cluster records them, to end them after a crash). */
  onSpawn?: (p: Tied) => void;
}

/**
 * Builds (once, cached) and returns the directory holding etcd, kube-apiserver, kube-controller-manager, kubectl;
 * with `node`, also the kubelet, kube-proxy, kube-scheduler, Knative's controller and webhook, and CoreDNS.
 */
export async function buildControlPlane(
  log: (line: string) => void = () => {},
  { node = false }: { node?: boolean } = {},
): Promise<string> {
  const started = Date.now();
  const script = join(here, "build-binaries.sh");
  const child = execFile("bash", node ? [script, "--node"] : [script], { maxBuffer: 64 << 20 });
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
  const node = opts.node;
  const binDir = await buildControlPlane(log, { node: node !== undefined });
  const started = performance.now();
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), "service-ca-cp-")));
  const pki = join(dir, "pki");
  const logs = join(dir, "logs");
  await mkdir(pki, { recursive: true });
  await mkdir(logs, { recursive: true });
  await run("bash", [join(here, "make-certs.sh"), pki, ...(node ? [node.name, node.address] : [])]);
  const [etcdPort, peerPort, freeApiPort] = await distinctFreePorts(3);
  const address = node?.address ?? "127.0.0.1";
  const apiPort = node ? (node.port ?? 6443) : freeApiPort;
  const server = `https://${address}:${apiPort}`;
  const procs: Tied[] = [];
  const tied = (name: string, args: string[]) => {
    const p = spawnTied(name, join(binDir, name), args, { logFile: join(logs, `${name}.log`) });
    procs.push(p);
    opts.onSpawn?.(p);
    return p;
  };
  const failedEarly = (p: Tied) => () => {
    if (p.running()) return undefined;
    const file = join(logs, p.name + ".log");
    return `${p.name} exited; the end of ${file}:\n${tailOf(file)}`;
  };

  const stopAll = async (names: string[]) => {
    await Promise.all(procs.filter((p) => names.includes(p.name)).map((p) => p.stop()));
  };
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
      `--bind-address=${address}`,
      `--advertise-address=${address}`,
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
      // Without a node nothing needs the `kubernetes` Service's endpoint; with one, pods reach the API server by it.
      ...(node ? [] : ["--endpoint-reconciler-type=none"]),
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
      ...(node
        ? [
            "--enable-admission-plugins=NodeRestriction",
            `--kubelet-client-certificate=${pki}/apiserver-kubelet-client.crt`,
            `--kubelet-client-key=${pki}/apiserver-kubelet-client.key`,
            `--kubelet-certificate-authority=${pki}/ca.crt`,
            "--kubelet-preferred-address-types=InternalIP",
          ]
        : []),
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
    const componentKubeconfig = async (user: string) => {
      const file = join(dir, `${user}.kubeconfig`);
      await writeFile(
        file,
        kubeconfigYaml(server, pki, user, {
          ca: clientTls.ca,
          cert: await readFile(`${pki}/${user}.crt`),
          key: await readFile(`${pki}/${user}.key`),
        }),
      );
      return file;
    };
    const kcmKubeconfig = await componentKubeconfig("controller-manager");
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
    if (node) {
      const schedulerKubeconfig = await componentKubeconfig("scheduler");
      tied("kube-scheduler", [
        `--kubeconfig=${schedulerKubeconfig}`,
        `--authentication-kubeconfig=${schedulerKubeconfig}`,
        `--authorization-kubeconfig=${schedulerKubeconfig}`,
        "--secure-port=0",
        "--leader-elect=false",
      ]);
    }
    log(`control plane ready in ${((performance.now() - started) / 1000).toFixed(2)} s (${server}, ${dir})`);

    plane = {
      dir,
      binDir,
      kubeconfig,
      kubectl: join(binDir, "kubectl"),
      server,
      caFile: `${pki}/ca.crt`,
      pkiDir: pki,
      auditLog,
      serviceClusterIpRange,
      processes: () => procs.filter((p) => p.running()),
      stopControllers: () => stopAll(["kube-scheduler", "kube-controller-manager"]),
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
        await stopAll(["kube-scheduler", "kube-controller-manager"]);
        await stopAll(["kube-apiserver"]);
        await stopAll(["etcd"]);
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

/** A kubeconfig with its certificates inline, for one user of the cluster's CA. */
export function kubeconfigYaml(
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
