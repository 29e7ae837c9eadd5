// The functions as deployed run from their esbuild bundles, and so do they here: a bundle is up in a fraction
// of a second, where nine functions compiling TypeScript through tsx at once took 30 s and more on a loaded
// machine. The bundles of a given source tree are built once and cached under a hash of every input (the
// functions, shared/, the build script and the lockfile); the directory is named in SERVICE_CA_BUNDLES, which
// every process started afterwards (each test file) inherits and reuses.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import { buildFunctions } from "../../scripts/build.ts";
import { cacheDir } from "../cache-dir.ts";

const repoRoot = join(import.meta.dirname, "../..");
const KEEP = 4;
let building: Promise<string> | undefined;

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(join(repoRoot, dir), { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && /\.(ts|mjs|js|json)$/.test(e.name))
    .map((e) => relative(repoRoot, join(e.parentPath, e.name)));
}

/** A hash of everything a bundle is built from. */
export async function sourcesKey(): Promise<string> {
  const files = [
    ...(await filesUnder("functions")),
    ...(await filesUnder("shared")),
    "scripts/build.ts",
    "dev/function-process-env.ts",
    "package-lock.json",
  ].sort();
  const hash = createHash("sha256");
  for (const f of files)
    hash
      .update(f)
      .update("\0")
      .update(await readFile(join(repoRoot, f)))
      .update("\0");
  return hash.digest("hex").slice(0, 16);
}

/** The directory holding dist-style bundles (<name>.mjs) of the current sources. */
export function functionBundles(): Promise<string> {
  const given = process.env.SERVICE_CA_BUNDLES;
  if (given && existsSync(given)) return Promise.resolve(given);
  building ??= (async () => {
    const root = join(cacheDir(), "bundles");
    const dir = join(root, await sourcesKey());
    if (!existsSync(join(dir, "done"))) {
      const tmp = `${dir}.tmp-${process.pid}`;
      await buildFunctions(undefined, tmp);
      await rm(dir, { recursive: true, force: true });
      await writeFile(join(tmp, "done"), "");
      await rename(tmp, dir).catch(async (err) => {
        if (!existsSync(join(dir, "done"))) throw err; // another process finished the same build first
        await rm(tmp, { recursive: true, force: true });
      });
      await prune(root, dir);
    }
    process.env.SERVICE_CA_BUNDLES = dir;
    return dir;
  })();
  return building;
}

/** Keeps the newest few builds, so the cache does not grow with every edit. */
async function prune(root: string, keep: string) {
  const dirs = (await readdir(root, { withFileTypes: true })).filter(
    (e) => e.isDirectory() && !e.name.includes(".tmp-"),
  );
  const withTimes = await Promise.all(
    dirs.map(async (e) => ({
      path: join(root, e.name),
      at: (await stat(join(root, e.name))).mtimeMs,
    })),
  );
  const old = withTimes.sort((a, b) => b.at - a.at).slice(KEEP);
  for (const d of old) if (d.path !== keep) await rm(d.path, { recursive: true, force: true });
}

export async function bundleOf(name: string): Promise<string> {
  return join(await functionBundles(), `${name}.mjs`);
}
