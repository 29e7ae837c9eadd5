// Cold start: each function from process spawn to /health/readiness 200, median of 10, as deployed (the
// launcher, bundle and code cache `npm run build` writes, started with the function's Node flags, in a Pod's
// environment) and, for comparison, the same bundle without its code cache and the TypeScript sources through tsx.
import { nodeFlagsOf, podLikeEnv } from "../dev/function-process-env.ts";
import { spawn } from "node:child_process";
import { copyFile, mkdtemp, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { buildFunctions, bundleFiles } from "../scripts/build.ts";
import { freePort } from "../dev/processes.ts";
import { machine, percentile, printTable } from "./support.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const DEV_RUNS = Number(process.env.BENCH_DEV_RUNS ?? 3);
const root = join(import.meta.dirname, "..");
// Issue 15's target: spawn → ready within 150 ms.
const TARGET_MS = 150;

// In-cluster credentials, as in a Pod: nothing waits for the API server (a closed port here) before readiness.
const dir = await mkdtemp(join(tmpdir(), "cold-start-"));

async function timeToReady(args: string[]): Promise<number> {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: { ...podLikeEnv(port), LOG_LEVEL: "warn" },
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
// Taken through require, as the launcher and bundles take it (an ES import of node:http builds its ES facade, which
// loads undici: ~50 ms more, which the floor printed until 2026-12-03).
const floorScript = join(dir, "node-http-alone.mjs");
await writeFile(
  floorScript,
  `import { createRequire } from "node:module";
const { createServer } = createRequire(import.meta.url)("node:http");
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
  for (let i = 0; i < RUNS; i++) runs.push(await timeToReady([...nodeFlagsOf(name), bundle]));
  // The same launcher and bundle without the code cache beside them: V8 parses and compiles what the start runs.
  const [launcherFile, bundleFile] = bundleFiles(name);
  const bare = await mkdtemp(join(tmpdir(), "cold-start-no-cache-"));
  for (const f of [launcherFile, bundleFile]) await copyFile(join(dirname(bundle), f), join(bare, f));
  const uncached: number[] = [];
  for (let i = 0; i < RUNS; i++)
    uncached.push(await timeToReady([...nodeFlagsOf(name), join(bare, launcherFile)]));
  const dev: number[] = [];
  for (let i = 0; i < DEV_RUNS; i++)
    dev.push(await timeToReady(["--import", "tsx", join(root, "shared/host/main.ts"), name]));
  const sorted = [...runs].sort((a, b) => a - b);
  const med = percentile(sorted, 50);
  rows.push([
    name,
    ((await stat(join(dirname(bundle), bundleFile))).size / 1e6).toFixed(2),
    med,
    sorted[0]!,
    sorted.at(-1)!,
    percentile(
      [...uncached].sort((a, b) => a - b),
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
    "without code cache median",
    `tsx sources median of ${DEV_RUNS}`,
    `bundle ≤ ${TARGET_MS} ms`,
  ],
  rows,
);
