// What a node cluster changes on the host, and putting it back. Before it changes anything a start writes a
// ledger (the sysctls as they were, which paths existed, every process it starts), which is also the lock that
// keeps one node cluster per machine; the teardown, or the next start after a crash, sweeps by the ledger.
import { existsSync, readFileSync } from "node:fs";
import {
  link,
  lstat,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  rmdir,
  unlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { command } from "./commands.ts";
import { nodeNetwork } from "./configs.ts";

/** Runs a command for its effect; false when it failed (the thing to remove was not there, usually). */
const run = async (cmd: string, args: string[], input?: string) =>
  (await command(cmd, args, input)).code === 0;

export const ledgerPath = "/run/service-ca-functions-node-cluster.json";

/** The kubelet sets the first six (container_manager_linux.go setupKernelTunables); the rest are checked too. */
export const nodeSysctls = [
  "kernel/panic",
  "kernel/panic_on_oops",
  "vm/overcommit_memory",
  "vm/panic_on_oom",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
  "net/ipv4/ip_forward",
  "net/ipv4/conf/all/route_localnet",
  "net/bridge/bridge-nf-call-iptables",
  "net/netfilter/nf_conntrack_max",
  "net/netfilter/nf_conntrack_tcp_timeout_established",
  "net/netfilter/nf_conntrack_tcp_timeout_close_wait",
];

/**
 * Host paths the node's components create whatever their configuration: containerd 1.6 its shim sockets and
 * runc state under /run/containerd, libcni its result cache under /var/lib/cni, the kubelet its log links under
 * /var/log/containers, its device-plugin socket under /var/lib/kubelet and the default flexvolume directory
 * under /usr/libexec/kubernetes, CNI its netns mounts under /run/netns.
 */
const hostPaths = [
  "/run/containerd",
  "/var/lib/cni",
  "/var/log/containers",
  "/var/lib/kubelet",
  "/usr/libexec/kubernetes",
  "/run/netns",
];

interface ProcessId {
  pid: number;
  /** the start time in /proc/<pid>/stat, so a reused PID is never mistaken for ours */
  start: string;
}

export interface Ledger {
  owner: ProcessId;
  dir: string;
  sysctls: Record<string, string>;
  existed: Record<string, boolean>;
  processes: (ProcessId & { name: string })[];
}

/** The PID and start time of a live process (a zombie counts as gone: it has exited, its parent not yet reaped it). */
export function processId(pid: number): ProcessId | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = fields[19];
    return start && fields[0] !== "Z" ? { pid, start } : undefined;
  } catch {
    return undefined;
  }
}

const alive = (p: ProcessId) => processId(p.pid)?.start === p.start;

export function readSysctls(keys = nodeSysctls): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of keys) {
    try {
      out[key] = readFileSync(`/proc/sys/${key}`, "utf8").trim();
    } catch {
      // not on this kernel (no br_netfilter, no conntrack loaded): nothing to restore
    }
  }
  return out;
}

/** The ledger of the node cluster on this machine, if any. */
export async function readLedger(): Promise<Ledger | undefined> {
  try {
    return JSON.parse(await readFile(ledgerPath, "utf8")) as Ledger;
  } catch {
    return undefined;
  }
}

export class HostLedger {
  private saving: Promise<void> = Promise.resolve();
  constructor(readonly data: Ledger) {}

  record(name: string, pid: number): void {
    const id = processId(pid);
    if (id) this.data.processes.push({ name, ...id });
    this.saving = this.saving.then(() => writeAtomically(ledgerPath, this.data));
  }

  flushed(): Promise<void> {
    return this.saving;
  }
}

async function writeAtomically(path: string, data: Ledger) {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(data, null, 2));
  await rename(tmp, path);
}

/**
 * Takes the machine's node-cluster lock for `dir`, first sweeping up after an owner that died, and waiting
 * (up to `waitMs`) while a live one holds it. Reads the sysctls and host paths only once no one else's node runs.
 */
export async function acquireLedger(
  dir: string,
  log: (line: string) => void,
  waitMs = 20 * 60_000,
): Promise<HostLedger> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const held = await readLedger();
    if (held && alive(held.owner) && held.owner.pid !== process.pid) {
      if (Date.now() > deadline)
        throw new Error(`a node cluster of pid ${held.owner.pid} (${held.dir}) is still running`);
      if (!told) log(`waiting for the node cluster of pid ${held.owner.pid} (${held.dir}) to stop`);
      told = true;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    if (held) {
      log(
        `cleaning up after the node cluster of pid ${held.owner.pid} (${held.dir}), which ended without it`,
      );
      await sweepHost(held, log);
      continue;
    }
    const data: Ledger = {
      owner: processId(process.pid)!,
      dir,
      sysctls: readSysctls(),
      existed: Object.fromEntries(hostPaths.map((p) => [p, existsSync(p)])),
      processes: [],
    };
    // link() fails if the ledger appeared meanwhile, and a reader never sees it half written.
    const tmp = `${ledgerPath}.${process.pid}.new`;
    await writeFile(tmp, JSON.stringify(data, null, 2));
    try {
      await link(tmp, ledgerPath);
      return new HostLedger(data);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      await unlink(tmp).catch(() => {});
    }
  }
}

/**
 * Puts the host back as the ledger found it: its processes and whatever they left running, mounts, the pods'
 * network namespaces, links, files, kubepods cgroups, KUBE-* iptables chains, sysctls; then the work dir and the
 * ledger. Safe to run twice. Returns what could not be removed (empty when the host is clean).
 */
export async function sweepHost(ledger: Ledger, log: (line: string) => void = () => {}): Promise<string[]> {
  await killLeftovers(ledger);
  await unmountUnder([ledger.dir, "/run/containerd"]);
  for (const ns of await cniNetns()) await run("ip", ["netns", "del", ns]);
  if (
    !ledger.existed["/run/netns"] &&
    existsSync("/run/netns") &&
    (await readdir("/run/netns")).length === 0
  ) {
    await unmountUnder(["/run/netns"]);
    await rmdir("/run/netns").catch(() => {});
  }
  for (const veth of await podVeths()) await run("ip", ["link", "del", veth]);
  for (const l of [nodeNetwork.podBridge, nodeNetwork.nodeLink]) await run("ip", ["link", "del", l]);
  await removeHostFiles(ledger);
  await removeKubepodsCgroups();
  for (const family of ["iptables", "ip6tables"] as const) await removeKubeChains(family);
  for (const [key, value] of Object.entries(ledger.sysctls)) {
    if (readSysctls([key])[key] !== value) await writeFile(`/proc/sys/${key}`, value).catch(() => {});
  }
  const left = await leftovers(ledger);
  if (!left.some((l) => l.startsWith("mount "))) await rm(ledger.dir, { recursive: true, force: true });
  else log(`kept ${ledger.dir}: mounts are left under it`);
  const current = await readLedger();
  if (current && current.owner.pid === ledger.owner.pid && current.owner.start === ledger.owner.start)
    await rm(ledgerPath, { force: true });
  for (const l of left) log(`left on the host: ${l}`);
  return left;
}

/** What of a node cluster is still on the host (processes, mounts, netns, links, chains, cgroups, sysctls, paths). */
export async function leftovers(ledger: Ledger): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await leftoverPids(ledger)) out.push(`process ${pid} (${processName(pid)})`);
  for (const m of mountsUnder([ledger.dir, "/run/containerd"])) out.push(`mount ${m}`);
  for (const ns of await cniNetns()) out.push(`netns ${ns}`);
  for (const l of [nodeNetwork.podBridge, nodeNetwork.nodeLink, ...(await podVeths())])
    if (existsSync(`/sys/class/net/${l}`)) out.push(`link ${l}`);
  for (const family of ["iptables", "ip6tables"] as const)
    for (const c of (await kubeChains(family)).map((t) => `${family} ${t.table} ${t.chain}`)) out.push(c);
  for (const c of await kubepodsCgroups()) out.push(`cgroup ${c}`);
  const now = readSysctls(Object.keys(ledger.sysctls));
  for (const [key, value] of Object.entries(ledger.sysctls))
    if (now[key] !== value) out.push(`sysctl ${key} = ${now[key]} (was ${value})`);
  for (const p of hostPaths) {
    // /run/netns holding other namespaces is someone else's now (test hosts); ours were listed above.
    const othersUse = p === "/run/netns" && existsSync(p) && (await readdir(p)).length > 0;
    if (!ledger.existed[p] && existsSync(p) && !othersUse) out.push(`path ${p}`);
  }
  return out;
}

// ---- processes ---------------------------------------------------------------------------------------------

async function leftoverPids(ledger: Ledger): Promise<number[]> {
  const pids = new Set(ledger.processes.filter(alive).map((p) => p.pid));
  // containerd's shims outlive it, and the pods' processes outlive their shims.
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv[0]?.includes("containerd-shim") && argv.some((a) => a.startsWith(ledger.dir + "/")))
        pids.add(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  for (const cgroup of await kubepodsCgroups()) {
    const procs = await readFile(join(cgroup, "cgroup.procs"), "utf8").catch(() => "");
    for (const pid of procs.split("\n").filter(Boolean)) pids.add(Number(pid));
  }
  pids.delete(process.pid);
  return [...pids];
}

function processName(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "gone";
  }
}

async function killLeftovers(ledger: Ledger) {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pids = await leftoverPids(ledger);
    if (pids.length === 0 || Date.now() > deadline) return;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---- mounts, netns, links, files ---------------------------------------------------------------------------

function mountsUnder(prefixes: string[]): string[] {
  const points = readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) =>
      line.split(" ")[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))),
    );
  return points.filter((m) => prefixes.some((p) => m === p || m.startsWith(p + "/")));
}

async function unmountUnder(prefixes: string[]) {
  // Stacked mounts show up once each, so go round until none is left (or nothing more comes off).
  for (let round = 0; round < 5; round++) {
    const mounts = mountsUnder(prefixes);
    if (mounts.length === 0) return;
    const deepestFirst = [...new Set(mounts)].sort(
      (a, b) => b.split("/").length - a.split("/").length || b.length - a.length,
    );
    for (const m of deepestFirst) if (!(await run("umount", [m]))) await run("umount", ["-l", m]);
  }
}

async function cniNetns(): Promise<string[]> {
  if (!existsSync("/run/netns")) return [];
  return (await readdir("/run/netns")).filter((n) => n.startsWith("cni-"));
}

/** The host ends of the pods' veth pairs: the ports of the CNI bridge. */
async function podVeths(): Promise<string[]> {
  const dir = `/sys/class/net/${nodeNetwork.podBridge}/brif`;
  return existsSync(dir) ? readdir(dir) : [];
}

async function removeHostFiles(ledger: Ledger) {
  for (const p of hostPaths.filter((p) => p !== "/run/netns")) {
    if (!ledger.existed[p]) {
      await rm(p, { recursive: true, force: true });
      continue;
    }
    // It was there before: take out only what points into, or was named for, this cluster.
    if (p === "/var/log/containers") {
      for (const name of await readdir(p).catch(() => [])) {
        const target = await readlink(join(p, name)).catch(() => "");
        if (target.startsWith(ledger.dir + "/")) await rm(join(p, name), { force: true });
      }
    }
    if (p === "/var/lib/kubelet") await rm(join(p, "device-plugins", "kubelet.sock"), { force: true });
    if (p === "/var/lib/cni") {
      const results = join(p, "results");
      for (const name of await readdir(results).catch(() => []))
        if (name.startsWith("klpods-")) await rm(join(results, name), { force: true });
    }
  }
}

// ---- cgroups -----------------------------------------------------------------------------------------------

/** Every kubepods cgroup in every hierarchy, deepest first. */
async function kubepodsCgroups(): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for (const d of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (d.isDirectory()) await walk(join(dir, d.name));
    }
    out.push(dir);
  };
  for (const hierarchy of await readdir("/sys/fs/cgroup").catch(() => [])) {
    const top = join("/sys/fs/cgroup", hierarchy, "kubepods");
    if (await lstat(top).catch(() => undefined)) await walk(top);
  }
  return out.sort((a, b) => b.split("/").length - a.split("/").length);
}

async function removeKubepodsCgroups() {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const left = await kubepodsCgroups();
    for (const c of left) await rmdir(c).catch(() => {});
    if ((await kubepodsCgroups()).length === 0 || Date.now() > deadline) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- iptables ----------------------------------------------------------------------------------------------

interface KubeChain {
  table: string;
  chain: string;
}

async function kubeChains(family: "iptables" | "ip6tables"): Promise<KubeChain[]> {
  const { stdout } = await command(`${family}-save`, []);
  let table = "";
  const out: KubeChain[] = [];
  for (const line of stdout.split("\n")) {
    if (line.startsWith("*")) table = line.slice(1);
    else if (line.startsWith(":KUBE-")) out.push({ table, chain: line.slice(1).split(" ")[0]! });
  }
  return out;
}

/**
 * Every KUBE-* chain, kube-proxy's and the kubelet's (KUBE-FIREWALL, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT are
 * left by `kube-proxy --cleanup`): the jumps to them from the built-in chains, then their rules, then the chains,
 * in one iptables-restore per family.
 */
async function removeKubeChains(family: "iptables" | "ip6tables") {
  const { stdout } = await command(`${family}-save`, []);
  const byTable = new Map<string, { jumps: string[]; chains: string[] }>();
  let table = "";
  for (const line of stdout.split("\n")) {
    if (line.startsWith("*")) {
      table = line.slice(1);
      byTable.set(table, { jumps: [], chains: [] });
    } else if (line.startsWith(":KUBE-")) byTable.get(table)!.chains.push(line.slice(1).split(" ")[0]!);
    else if (line.startsWith("-A ") && !line.startsWith("-A KUBE-") && / -[jg] KUBE-/.test(line))
      byTable.get(table)!.jumps.push(`-D ${line.slice(3)}`);
  }
  const script = [...byTable]
    .filter(([, t]) => t.chains.length > 0 || t.jumps.length > 0)
    .map(([name, t]) =>
      [
        `*${name}`,
        ...t.jumps,
        ...t.chains.map((c) => `-F ${c}`),
        ...t.chains.map((c) => `-X ${c}`),
        "COMMIT",
      ].join("\n"),
    )
    .join("\n");
  if (script) await run(`${family}-restore`, ["--noflush"], script + "\n");
}
