// Cold start: each function from process spawn to /health/readiness 200, median of 10, as deployed (the
// esbuild bundle `npm run build` writes) and, for comparison, from the TypeScript sources through tsx.
import { FUNCTION_PROCESS_ENV } from "../dev/function-process-env.ts";
import { spawn } from "node:child_process";
import { mkdtemp, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFunctions } from "../scripts/build.ts";
import { freePort } from "../dev/processes.ts";
import { machine, percentile, printTable } from "./support.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const DEV_RUNS = Number(process.env.BENCH_DEV_RUNS ?? 3);
const root = join(import.meta.dirname, "..");
// Issue 15's target: spawn → ready within 150 ms.
const TARGET_MS = 150;

// Credentials are read lazily and no request is made before readiness, so an unreachable server is fine.
const dir = await mkdtemp(join(tmpdir(), "cold-start-"));
const kubeconfig = join(dir, "kubeconfig");
await writeFile(
  kubeconfig,
  [
    "apiVersion: v1",
    "kind: Config",
    "clusters: [{name: c, cluster: {server: 'https://127.0.0.1:9'}}]",
    "users: [{name: u, user: {token: unused}}]",
    "contexts: [{name: c, context: {cluster: c, user: u}}]",
    "current-context: c",
  ].join("\n"),
);

async function timeToReady(args: string[], env: Record<string, string> = {}): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      ...FUNCTION_PROCESS_ENV,
      PORT: String(port),
      HOST: "127.0.0.1",
      KUBECONFIG: kubeconfig,
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: "ignore",
  });
  try {
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/health/readiness`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) return performance.now() - t0;
      if (child.exitCode !== null) throw new Error(`${args.join(" ")} exited with ${child.exitCode}`);
      if (performance.now() - t0 > 30_000) throw new Error(`${args.join(" ")} not ready in 30 s`);
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    child.kill("SIGKILL");
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once("exit", r)));
  }
}

const bundles = await buildFunctions();
const rows: (string | number)[][] = [];

// The floor of this measurement: Node 24 itself answering readiness from node:http, with no dependency loaded.
const floorScript = join(dir, "node-http-alone.mjs");
await writeFile(
  floorScript,
  `import { createServer } from "node:http";
createServer((_, res) => res.end("ok")).listen(Number(process.env.PORT), process.env.HOST);`,
);
const floor: number[] = [];
for (let i = 0; i < RUNS; i++) floor.push(await timeToReady([floorScript]));
const floorSorted = [...floor].sort((a, b) => a - b);
rows.push([
  "(node:http alone, the floor)",
  "—",
  percentile(floorSorted, 50),
  floorSorted[0]!,
  floorSorted.at(-1)!,
  "—",
  "—",
  "—",
]);
for (const [name, bundle] of Object.entries(bundles).sort()) {
  const runs: number[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await timeToReady([bundle]));
  // Node 24's on-disk compile cache, filled by one start first: what a container restarted on the same disk gets.
  const cache = { NODE_COMPILE_CACHE: await mkdtemp(join(tmpdir(), "compile-cache-")) };
  await timeToReady([bundle], cache);
  const cached: number[] = [];
  for (let i = 0; i < RUNS; i++) cached.push(await timeToReady([bundle], cache));
  const dev: number[] = [];
  for (let i = 0; i < DEV_RUNS; i++)
    dev.push(await timeToReady(["--import", "tsx", join(root, "shared/host/main.ts"), name]));
  const sorted = [...runs].sort((a, b) => a - b);
  const med = percentile(sorted, 50);
  rows.push([
    name,
    ((await stat(bundle)).size / 1e6).toFixed(2),
    med,
    sorted[0]!,
    sorted.at(-1)!,
    percentile(
      [...cached].sort((a, b) => a - b),
      50,
    ),
    percentile(
      [...dev].sort((a, b) => a - b),
      50,
    ),
    med <= TARGET_MS ? "met" : `missed by ${(med - TARGET_MS).toFixed(0)} ms`,
  ]);
}
printTable(
  `Cold start: spawn → /health/readiness 200, ms, median of ${RUNS} (${machine()})`,
  [
    "function",
    "bundle MB",
    "bundle median",
    "min",
    "max",
    "warm NODE_COMPILE_CACHE median",
    `tsx sources median of ${DEV_RUNS}`,
    `bundle ≤ ${TARGET_MS} ms`,
  ],
  rows,
);
