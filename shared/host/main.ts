// Command line entry: `main.ts <function> [flags]` loads functions/<function>/ and serves it.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { HostFunction } from "./define.ts";
import { functionNames, functionsDir } from "./functions.ts";
import { runHost } from "./run-host.ts";

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h") {
    console.log(`Usage: main.ts <function> [flags]    functions: ${functionNames().join(", ")}`);
    process.exit(name ? 0 : 2);
  }
  if (!functionNames().includes(name)) {
    console.error(`unknown function ${JSON.stringify(name)}; one of: ${functionNames().join(", ")}`);
    process.exit(2);
  }
  const mod = (await import(pathToFileURL(join(functionsDir, name, "index.ts")).href)) as {
    default: HostFunction;
  };
  await runHost(mod.default, rest);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  console.error(JSON.stringify({ level: "error", msg: "failed to start", error: String(err) }));
  process.exit(1);
});
