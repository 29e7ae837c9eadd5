// What every benchmark shares: the machine line, percentiles, a table printer, and watching objects appear.
import { readFileSync } from "node:fs";
import { request as httpsRequest, type RequestOptions } from "node:https";
import { availableParallelism, cpus, totalmem } from "node:os";
import * as k8s from "@kubernetes/client-node";

export function machine(): string {
  const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
  return `${availableParallelism()} cores (${cpu}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version} (OpenSSL ${process.versions.openssl})`;
}

/** Nearest-rank percentile of already sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const median = (xs: number[]) =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

export function printTable(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === "number" ? fmt(c) : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(`\n${title}\n`);
  console.log(line(cells[0]!));
  console.log(`|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`);
  for (const r of cells.slice(1)) console.log(line(r));
  console.log("");
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1));

/**
 * Watches a kind in a namespace and remembers when each object was first seen satisfying `accept`, so a
 * benchmark learns the moment a Secret became readable without polling the API server.
 */
export class Arrivals<T extends k8s.KubernetesObject> {
  private readonly seen = new Map<string, number>();
  private readonly waiting = new Map<string, Array<(t: number) => void>>();
  private abort?: () => void;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly path: string,
    private readonly accept: (o: T) => boolean = () => true,
  ) {}

  async start(): Promise<void> {
    const req = await new k8s.Watch(this.kc).watch(
      this.path,
      {},
      (type, obj: T) => {
        if (type !== "ADDED" && type !== "MODIFIED") return;
        const name = obj.metadata?.name ?? "";
        if (this.seen.has(name) || !this.accept(obj)) return;
        const t = performance.now();
        this.seen.set(name, t);
        for (const w of this.waiting.get(name) ?? []) w(t);
        this.waiting.delete(name);
      },
      () => {},
    );
    this.abort = () => req.abort();
  }

  /** When `name` was first seen (performance.now()), waiting for it if need be. */
  when(name: string, timeoutMs = 60_000): Promise<number> {
    const t = this.seen.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${name} did not appear in ${timeoutMs} ms`)),
        timeoutMs,
      );
      const list = this.waiting.get(name) ?? [];
      list.push((at) => {
        clearTimeout(timer);
        resolve(at);
      });
      this.waiting.set(name, list);
    });
  }

  get count(): number {
    return this.seen.size;
  }

  stop(): void {
    this.abort?.();
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** A memory figure of a process from /proc/<pid>/status, MB (NaN once it is gone). */
function statusMb(pid: number, field: "VmRSS" | "VmHWM"): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN) / 1024;
  } catch {
    return NaN;
  }
}

/** Resident memory of a process now (VmRSS), MB. */
export const rssMb = (pid: number) => statusMb(pid, "VmRSS");

/** Peak resident memory of a process so far (VmHWM), MB. */
export const peakRssMb = (pid: number) => statusMb(pid, "VmHWM");

/**
 * The peaks of a process's resident memory as the kernel splits it (RssAnon: heap, stacks, malloc; RssFile: mapped
 * files, for Node its own binary's pages), sampled every `everyMs`, MB. VmHWM is the exact peak of their sum.
 */
export class RssSplit {
  anonMb = 0;
  fileMb = 0;
  readonly #timer: NodeJS.Timeout;
  constructor(
    readonly pid: number,
    everyMs = 20,
  ) {
    this.#timer = setInterval(() => this.sample(), everyMs);
  }
  sample(): void {
    try {
      const status = readFileSync(`/proc/${this.pid}/status`, "utf8");
      const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0);
      this.anonMb = Math.max(this.anonMb, kb("RssAnon") / 1024);
      this.fileMb = Math.max(this.fileMb, kb("RssFile") / 1024);
    } catch {
      // gone
    }
  }
  stop(): void {
    clearInterval(this.#timer);
    this.sample();
  }
}

/**
 * The kube-apiserver's own count of the requests it served, by verb and resource (`apiserver_request_total`,
 * summed over codes and scopes), read from its /metrics with the admin's credentials.
 */
export async function apiServerRequests(kc: k8s.KubeConfig): Promise<Map<string, number>> {
  const server = kc.getCurrentCluster()!.server;
  const opts: RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const text = await new Promise<string>((resolve, reject) => {
    const req = httpsRequest(new URL("/metrics", server), { ...opts, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
  const counts = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith("apiserver_request_total{")) continue;
    const labels = Object.fromEntries(
      [...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!] as [string, string]),
    );
    const key = `${labels.verb} ${labels.resource}${labels.subresource ? "/" + labels.subresource : ""}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1)));
  }
  return counts;
}

/** What `after` has more of than `before`, non-zero entries only. */
export function countsSince(before: Map<string, number>, after: Map<string, number>): Map<string, number> {
  return new Map(
    [...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)] as [string, number]).filter(([, v]) => v > 0),
  );
}
