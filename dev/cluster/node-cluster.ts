// A real one-node Kubernetes cluster on this machine: the control plane serving a kubelet on containerd + runc +
// the CNI bridge, kube-proxy (iptables) and CoreDNS for cluster.local, with pods that reach nothing off the
// machine. Started and stopped as a whole; the teardown leaves the host as it found it, even after a crash.
//
//   node scripts/node24.mjs dev/cluster/node-cluster.ts up     # until Ctrl-C
//   node scripts/node24.mjs dev/cluster/node-cluster.ts down   # sweep up after a node cluster that crashed
import { spawn, type ChildProcess } from "node:child_process";
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as k8s from "@kubernetes/client-node";
import {
  buildControlPlane,
  kubeconfigYaml,
  startControlPlane,
  type ControlPlane,
} from "../controlplane/control-plane.ts";
import { spawnTied, tailOf, waitFor, type Tied } from "../processes.ts";
import {
  cniConflist,
  containerdToml,
  kubeletArgs,
  kubeletConfig,
  kubeProxyConfig,
  nodeNetwork,
  nodePaths,
  type NodePaths,
} from "./configs.ts";
import { command, mustRun, type CommandResult } from "./commands.ts";
import { corednsManifest } from "./coredns.ts";
import { acquireLedger, readLedger, processId, sweepHost, type HostLedger } from "./host.ts";
import { corednsImage, pauseImage } from "./images.ts";

export { nodeNetwork } from "./configs.ts";

export interface NodeClusterOptions {
  log?: (line: string) => void;
  /** Copy the components' logs to `<dir>-logs` before the work dir goes (they are kept anyway if start fails). */
  keepLogs?: boolean;
}

export interface NodeCluster {
  /** the work dir: every component's state, configuration and logs */
  dir: string;
  binDir: string;
  kubeconfig: string;
  kubectl: string;
  /** https://10.255.0.1:6443, the address the `kubernetes` Service's endpoint names too */
  server: string;
  caFile: string;
  nodeName: string;
  containerdSocket: string;
  /** containerd's, the kubelet's and kube-proxy's logs (the control plane's are in plane.auditLog's dir) */
  logDir: string;
  plane: ControlPlane;
  /** the images already imported: the pod sandbox and CoreDNS */
  images: { pause: string; coredns: string };
  /** seconds from the call to each step of the bring-up */
  timings: Record<string, number>;
  /**
   * The host as this cluster found it once it held the machine's node-cluster lock (another node cluster may
   * have run until then): the sysctls the node changes and whether the host paths it writes to existed.
   * The teardown puts these back.
   */
  foundHost: { sysctls: Record<string, string>; paths: Record<string, boolean> };
  /** `ctr images import` into the namespace the kubelet uses; pods then name it with imagePullPolicy: Never */
  importImage(archive: string): Promise<void>;
  /** Tears everything down (pods, node, control plane, host changes); resolves once the host is clean. */
  stop(): Promise<StopReport>;
}

export interface StopReport {
  seconds: number;
  /** what could not be removed from the host; empty when it is clean */
  leftovers: string[];
}

const repoRoot = join(import.meta.dirname, "../..");

export async function startNodeCluster(opts: NodeClusterOptions = {}): Promise<NodeCluster> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (step: string) => {
    timings[step] = Number(((performance.now() - t0) / 1000).toFixed(2));
    log(`${step}: ${timings[step]} s`);
  };

  // Everything is built before the host changes at all.
  const binDir = await buildControlPlane(log, { node: true });
  const [pause, coredns] = await Promise.all([pauseImage(), corednsImage(binDir)]);
  mark("binaries and images");

  const dir = await mkdtemp(join(tmpdir(), "service-ca-node-"));
  const ledger = await acquireLedger(dir, log).catch(async (err: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw err;
  });
  mark("host lock");
  const reaper = startReaper();
  const p = nodePaths(dir);
  const procs: Tied[] = [];
  const record = (t: Tied) => {
    procs.push(t);
    ledger.record(t.name, t.pid);
  };
  const tied = (name: string, command: string, args: string[]) => {
    const t = spawnTied(name, command, args, { logFile: join(p.logs, `${name}.log`) });
    record(t);
    return t;
  };
  const ctr = (...args: string[]) => command("ctr", ["-a", p.containerdSocket, "-n", "k8s.io", ...args]);
  const importImage = async (archive: string) => {
    const r = await ctr("images", "import", archive);
    if (r.code !== 0) throw new Error(`ctr images import ${archive} failed: ${r.stderr.trim()}`);
  };

  let plane: ControlPlane | undefined;
  let keepLogs = opts.keepLogs ?? false;
  const teardown = (): Promise<StopReport> =>
    tearDown({ p, ledger, procs, plane, binDir, ctr, log, keepLogs }).finally(() => reaper.kill());
  let stopping: Promise<StopReport> | undefined;
  const stop = () => (stopping ??= teardown());
  const onSignal = (signal: NodeJS.Signals) =>
    void stop().finally(() => process.exit(signal === "SIGINT" ? 130 : 143));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  try {
    for (const d of [p.logs, p.etc, p.containerd, p.cniConfDir, p.kubeletRoot, p.podLogs, p.manifests])
      await mkdir(d, { recursive: true });
    // The node address on a bridge with no ports; the CNI conflist before containerd, which then reports
    // NetworkReady at once.
    const n = nodeNetwork;
    await mustRun("ip", ["link", "add", n.nodeLink, "type", "bridge"]);
    await mustRun("ip", ["addr", "add", `${n.nodeAddress}/32`, "dev", n.nodeLink]);
    await mustRun("ip", ["link", "set", n.nodeLink, "up"]);
    await writeFile(join(p.cniConfDir, "10-klpods.conflist"), cniConflist(p));
    await writeFile(join(p.etc, "containerd.toml"), containerdToml(p, pause.name));
    mark("network");

    const containerd = tied("containerd", "containerd", ["--config", join(p.etc, "containerd.toml")]);
    const runtime = (async () => {
      await waitFor("containerd", async () => ((await ctr("version")).code === 0 ? true : undefined), {
        timeoutMs: 30_000,
        intervalMs: 50,
        ...following(containerd, p),
      });
      mark("containerd");
      await Promise.all([importImage(pause.archive), importImage(coredns.archive)]);
      mark("images imported");
    })();
    const control = startControlPlane({
      dir: p.controlPlane,
      keepDir: true,
      node: { name: n.nodeName, address: n.nodeAddress, port: n.apiPort },
      onSpawn: record,
      log,
    }).then((cp) => {
      plane = cp;
      mark("control plane");
      return cp;
    });
    const [started] = await allOrFirstError([control, runtime]);

    const pki = started.pkiDir;
    const ca = await readFile(started.caFile);
    for (const [file, user, cert] of [
      ["kubelet.kubeconfig", "kubelet", "kubelet-client"],
      ["kube-proxy.kubeconfig", "kube-proxy", "kube-proxy"],
    ] as const) {
      const tls = {
        ca,
        cert: await readFile(`${pki}/${cert}.crt`),
        key: await readFile(`${pki}/${cert}.key`),
      };
      await writeFile(join(p.etc, file), kubeconfigYaml(started.server, pki, user, tls));
    }
    await writeFile(join(p.etc, "kubelet-config.yaml"), kubeletConfig(p, pki));
    await writeFile(join(p.etc, "kube-proxy-config.yaml"), kubeProxyConfig(p));
    const kubelet = tied("kubelet", join(binDir, "kubelet"), kubeletArgs(p));
    const kubeProxy = tied("kube-proxy", join(binDir, "kube-proxy"), [
      `--config=${join(p.etc, "kube-proxy-config.yaml")}`,
      "--v=2",
    ]);

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(started.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const apps = kc.makeApiClient(k8s.AppsV1Api);
    const kubectl = join(binDir, "kubectl");
    const manifest = join(p.etc, "coredns.yaml");
    await writeFile(manifest, corednsManifest(coredns.name));
    // kube-system appears a moment after /readyz.
    await waitFor(
      "CoreDNS applied",
      async () => {
        const r = await command(kubectl, ["--kubeconfig", started.kubeconfig, "apply", "-f", manifest]);
        if (r.code !== 0) throw new Error(r.stderr.trim());
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );

    await waitFor(
      `node ${n.nodeName} Ready`,
      async () => {
        const node = await core.readNode({ name: n.nodeName });
        return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") || undefined;
      },
      { timeoutMs: 60_000, intervalMs: 200, ...following(kubelet, p) },
    );
    mark("node Ready");
    await waitFor(
      "kube-proxy's rules for the kubernetes Service",
      async () => {
        const r = await command("iptables", ["-t", "nat", "-S", "KUBE-SERVICES"]);
        return r.stdout.includes(`${n.apiServiceIp}/32`) || undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, ...following(kubeProxy, p) },
    );
    mark("kube-proxy rules");
    await waitFor(
      "cluster DNS (CoreDNS available)",
      async () => {
        const d = await apps.readNamespacedDeployment({ name: "coredns", namespace: "kube-system" });
        return (d.status?.availableReplicas ?? 0) >= 1 || undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200, ...following(kubelet, p) },
    );
    mark("CoreDNS Ready");
    // Pods in `default` need its ServiceAccount, which the controller manager makes a moment after start.
    await waitFor("the default ServiceAccount", async () =>
      (await core.readNamespacedServiceAccount({ name: "default", namespace: "default" })) ? true : undefined,
    );
    mark("ready");

    return {
      dir,
      binDir,
      kubeconfig: started.kubeconfig,
      kubectl,
      server: started.server,
      caFile: started.caFile,
      nodeName: n.nodeName,
      containerdSocket: p.containerdSocket,
      logDir: p.logs,
      plane: started,
      images: { pause: pause.name, coredns: coredns.name },
      timings,
      foundHost: { sysctls: { ...ledger.data.sysctls }, paths: { ...ledger.data.existed } },
      importImage,
      stop: async () => {
        process.removeListener("SIGINT", onSignal);
        process.removeListener("SIGTERM", onSignal);
        return stop();
      },
    };
  } catch (err) {
    log(`node cluster failed to start; logs kept in ${dir}-logs`);
    keepLogs = true;
    await stop();
    process.removeListener("SIGINT", onSignal);
    process.removeListener("SIGTERM", onSignal);
    throw err;
  }
}

/**
 * Sweeps up after a node cluster whose process died without its teardown (a start does this itself). Refuses
 * while that process still runs; `owner` limits it to the cluster of that PID.
 */
export async function cleanupStaleNodeCluster(
  log: (line: string) => void = () => {},
  owner?: number,
): Promise<string[] | undefined> {
  const ledger = await readLedger();
  if (!ledger || (owner !== undefined && ledger.owner.pid !== owner)) return undefined;
  const running = processId(ledger.owner.pid);
  if (running?.start === ledger.owner.start && ledger.owner.pid !== process.pid)
    throw new Error(`the node cluster of pid ${ledger.owner.pid} is running; stop it there (Ctrl-C)`);
  return sweepHost(ledger, log);
}

interface TearDown {
  p: NodePaths;
  ledger: HostLedger;
  procs: Tied[];
  plane: ControlPlane | undefined;
  binDir: string;
  ctr: (...args: string[]) => Promise<CommandResult>;
  log: (line: string) => void;
  keepLogs: boolean;
}

/**
 * Pods go while the kubelet runs (so it unmounts their volumes and runs CNI DEL), with the controllers stopped
 * first so nothing replaces them; then kube-proxy and its rules, the kubelet, containers left over, containerd,
 * the control plane; then the host sweep from the ledger.
 */
async function tearDown({
  p,
  ledger,
  procs,
  plane,
  binDir,
  ctr,
  log,
  keepLogs,
}: TearDown): Promise<StopReport> {
  const t0 = performance.now();
  const running = (name: string) => procs.find((t) => t.name === name && t.running());
  const stopNamed = async (...names: string[]) => {
    await Promise.all(procs.filter((t) => names.includes(t.name)).map((t) => t.stop(10_000)));
  };
  const kubelet = running("kubelet");
  if (plane && kubelet && running("kube-apiserver")) {
    await plane.stopControllers();
    await command(join(binDir, "kubectl"), [
      "--kubeconfig",
      plane.kubeconfig,
      "delete",
      "pods",
      "--all",
      "--all-namespaces",
      "--grace-period=1",
      "--wait=true",
      "--timeout=60s",
    ]);
    await waitFor(
      "the pods' containers to stop",
      async () => ((await ctr("tasks", "ls", "-q")).stdout.trim() ? undefined : true),
      {
        timeoutMs: 30_000,
        intervalMs: 100,
        failFast: () => (kubelet.running() ? undefined : "the kubelet exited"),
      },
    ).catch((err: Error) => log(err.message));
  }
  await Promise.all([
    stopNamed("kube-proxy").then(() => command(join(binDir, "kube-proxy"), ["--cleanup", "--v=0"])),
    stopNamed("kubelet"),
  ]);
  if (running("containerd")) {
    for (const id of (await ctr("containers", "ls", "-q")).stdout.split("\n").filter(Boolean)) {
      await ctr("tasks", "kill", "-s", "KILL", id);
      await ctr("tasks", "rm", "-f", id);
      await ctr("containers", "rm", id);
    }
  }
  await Promise.all([stopNamed("containerd"), plane?.stop()]);
  await stopNamed(...procs.map((t) => t.name));
  if (keepLogs) {
    await cp(p.logs, `${p.dir}-logs`, { recursive: true }).catch(() => {});
    await cp(join(p.controlPlane, "logs"), `${p.dir}-logs/controlplane`, { recursive: true }).catch(() => {});
  }
  await ledger.flushed();
  const leftovers = await sweepHost(ledger.data, log);
  const seconds = Number(((performance.now() - t0) / 1000).toFixed(2));
  log(`node cluster stopped in ${seconds} s${leftovers.length ? `, ${leftovers.length} things left` : ""}`);
  return { seconds, leftovers };
}

/** A failFast and progressing pair for a wait on what one process does. */
function following(t: Tied, p: NodePaths) {
  return {
    failFast: () =>
      t.running()
        ? undefined
        : `${t.name} exited; the end of its log:\n${tailOf(join(p.logs, `${t.name}.log`))}`,
    progressing: () => t.running(),
    maxMs: 5 * 60_000,
  };
}

/** Like Promise.all, but waits for every promise to settle before rejecting, so no start is left half done. */
async function allOrFirstError<A, B>(ps: [Promise<A>, Promise<B>]): Promise<[A, B]> {
  const settled = await Promise.allSettled(ps);
  for (const s of settled) if (s.status === "rejected") throw s.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as [A, B];
}

/**
 * A process that sweeps up once this one has exited, however it exits (even SIGKILL): it waits on a pipe whose
 * other end only we hold, then runs `down` for our PID. Killed by a normal teardown.
 */
function startReaper(): ChildProcess {
  const child = spawn(
    "bash",
    [
      "-c",
      'trap "" INT HUP; read -r _; exec "$@"',
      "reaper",
      process.execPath,
      "--import",
      "tsx",
      fileURLToPath(import.meta.url),
      "down",
      "--owner",
      String(process.pid),
    ],
    { cwd: repoRoot, stdio: ["pipe", "ignore", "ignore"], detached: true },
  );
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  return child;
}

// ---- CLI ---------------------------------------------------------------------------------------------------

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [command, ...rest] = process.argv.slice(2);
  const log = (l: string) => console.log(`[node-cluster] ${l}`);
  if (command === "up") {
    const cluster = await startNodeCluster({ log, keepLogs: rest.includes("--keep-logs") });
    console.log(`ready: KUBECONFIG=${cluster.kubeconfig} KUBECTL=${cluster.kubectl}`);
    // Ctrl-C runs the teardown (the handler startNodeCluster registered) and exits.
  } else if (command === "down") {
    const i = rest.indexOf("--owner");
    const owner = i >= 0 ? Number(rest[i + 1]) : undefined;
    const left = await cleanupStaleNodeCluster(log, owner);
    if (left === undefined) log("no node cluster to clean up");
    else log(left.length === 0 ? "host clean" : `left on the host:\n${left.join("\n")}`);
  } else {
    console.error("usage: node scripts/node24.mjs dev/cluster/node-cluster.ts up|down");
    process.exit(2);
  }
}
