// `npm test`: type check, lint, format check, then every test file under test/ with node:test, against one
// control plane started here (tests that need their own, e.g. to restart it, start their own).
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { startControlPlane } from "../dev/controlplane/control-plane.ts";
import { clusterEnv } from "../test/support/cluster.ts";
import { installInfra } from "../dev/local-system/local-system.ts";
import { functionBundles } from "../dev/local-system/bundles.ts";

const root = process.cwd();
const args = process.argv.slice(2);
const skipChecks = args.includes("--no-checks");
// test/load/ takes minutes: `npm run test:load` runs it (and only it) with --load; `npm test` leaves it out.
const load = args.includes("--load");
const filters = args.filter((a) => !a.startsWith("--"));

function testFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (name === "node_modules" || name === "go") return [];
    if (statSync(path).isDirectory()) return testFiles(path);
    return name.endsWith(".test.ts") ? [relative(root, path)] : [];
  });
}

function run(cmd: string, cmdArgs: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, cmdArgs, { stdio: "inherit", env });
    child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const started = Date.now();
let failed = 0;
if (!skipChecks) {
  for (const [name, cmd, cmdArgs] of [
    ["typecheck", "npx", ["tsc", "--noEmit"]],
    ["eslint", "npx", ["eslint", "."]],
    ["prettier", "npx", ["prettier", "--check", "."]],
  ] as const) {
    const code = await run(cmd, [...cmdArgs]);
    console.log(`check ${name}: ${code === 0 ? "ok" : "FAILED"}`);
    if (code !== 0) failed++;
  }
}

const files = testFiles(join(root, "test")).filter(
  (f) =>
    f.startsWith(join("test", "load") + sep) === load &&
    (filters.length === 0 || filters.some((p) => f.includes(p))),
);
// Every test runs the functions from one build of their bundles (SERVICE_CA_BUNDLES, inherited).
const bundlesStarted = performance.now();
console.log(
  `function bundles in ${await functionBundles()} (${((performance.now() - bundlesStarted) / 1000).toFixed(1)} s)`,
);
const plane = await startControlPlane({ log: (l) => console.log(`[control-plane] ${l}`) });
// Tests run every function under its own ServiceAccount, so infra/ (and the Knative CRDs it needs) comes first.
await installInfra(plane);
const stop = async () => {
  await plane.stop();
};
process.once("SIGINT", () => void stop().then(() => process.exit(130)));
process.once("SIGTERM", () => void stop().then(() => process.exit(143)));

let code: number;
try {
  code = await run(
    process.execPath,
    ["--import", "tsx", "--test", "--test-reporter=spec", "--test-timeout=900000", ...files],
    { ...process.env, ...clusterEnv(plane) },
  );
} finally {
  await stop();
}
if (code !== 0) failed++;
const secs = ((Date.now() - started) / 1000).toFixed(1);
console.log(`\n${failed === 0 ? "all checks and tests passed" : `${failed} step(s) failed`} in ${secs} s`);
process.exit(failed === 0 ? 0 : 1);
