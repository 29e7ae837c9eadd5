// `npm test`: type check, lint, format check, then every test file under test/ with node:test, against one
// control plane started here (tests that need their own, e.g. to restart it, start their own).
// `npm run test:unit` (--unit): only test/unit/, the pure and in-process tests, with no checks, no function
// bundles and no control plane: seconds, for the edit-test loop.
import { spawn } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join, relative, sep } from "node:path";

const root = process.cwd();
const args = process.argv.slice(2);
const unit = args.includes("--unit");
// The fast loop runs no checks: `npm run typecheck` and `npm run lint` are theirs.
const skipChecks = unit || args.includes("--no-checks");
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

// A unit test that hangs fails in two minutes, not fifteen.
const nodeTest = (files: string[], env?: NodeJS.ProcessEnv) =>
  run(
    process.execPath,
    [
      "--import",
      "tsx",
      "--test",
      "--test-reporter=spec",
      `--test-timeout=${unit ? 120_000 : 900_000}`,
      ...files,
    ],
    env,
  );
const selected = (f: string) => filters.length === 0 || filters.some((p) => f.includes(p));

let code: number;
if (unit) {
  // test/unit/ needs no control plane, no Go build and no network; nothing below it may start one.
  const files = testFiles(join(root, "test", "unit")).filter(selected);
  if (files.length === 0) console.log("no test/unit/ file matches the filters");
  code = files.length === 0 ? 1 : await nodeTest(files);
} else {
  const files = testFiles(join(root, "test")).filter(
    (f) => f.startsWith(join("test", "load") + sep) === load && selected(f),
  );
  // Loaded here, not at the top, so that --unit never loads the control plane or the bundler.
  const { startControlPlane } = await import("../dev/controlplane/control-plane.ts");
  const { clusterEnv } = await import("../test/support/cluster.ts");
  const { installInfra } = await import("../dev/local-system/local-system.ts");
  const { functionBundles } = await import("../dev/local-system/bundles.ts");
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

  try {
    code = await nodeTest(files, { ...process.env, ...clusterEnv(plane) });
  } finally {
    await stop();
  }
}
if (code !== 0) failed++;
const secs = ((Date.now() - started) / 1000).toFixed(1);
const what = unit ? "unit tests" : "checks and tests";
console.log(`\n${failed === 0 ? `all ${what} passed` : `${failed} step(s) failed`} in ${secs} s`);
process.exit(failed === 0 ? 0 : 1);
