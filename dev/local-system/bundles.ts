// The functions as deployed run from their esbuild bundles, and so do they here: a bundle is up in a fraction
// of a second, where nine functions compiling TypeScript through tsx at once took 30 s and more on a loaded
// machine. One build per run: the first caller builds into a directory of its own and names it in
// SERVICE_CA_BUNDLES, which every process started afterwards (each test file) inherits and reuses.
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFunctions } from "../../scripts/build.ts";

let building: Promise<string> | undefined;
let built: string | undefined;

/** The directory holding dist-style bundles (<name>.mjs) of the current sources. */
export function functionBundles(): Promise<string> {
  const given = process.env.SERVICE_CA_BUNDLES;
  if (given && existsSync(given)) return Promise.resolve(given);
  building ??= (async () => {
    const dir = await mkdtemp(join(tmpdir(), "service-ca-bundles-"));
    await buildFunctions(undefined, dir);
    process.env.SERVICE_CA_BUNDLES = built = dir;
    return dir;
  })();
  return building;
}

export async function bundleOf(name: string): Promise<string> {
  return join(await functionBundles(), `${name}.mjs`);
}

/** Removes the bundles this process built (never a directory it was given). */
export async function removeBundles(): Promise<void> {
  if (built) await rm(built, { recursive: true, force: true });
}
