// Where a Go module the control plane is built from lies on disk (the module cache), for the YAML it ships.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const knativeGoDir = join(import.meta.dirname, "go/knative");

/** `go mod download` of module@version (a no-op once cached) and its directory in the module cache. */
export async function goModuleDir(module: string, cwd = knativeGoDir): Promise<string> {
  const { stdout } = await run("go", ["mod", "download", "-json", module], {
    cwd,
    env: { ...process.env, PATH: `/usr/local/go/bin:${process.env.PATH}`, GOFLAGS: "-mod=mod" },
  });
  return JSON.parse(stdout).Dir as string;
}

export const KNATIVE_EVENTING = "knative.dev/eventing@v0.48.2";
export const KNATIVE_SERVING = "knative.dev/serving@v0.48.2";
