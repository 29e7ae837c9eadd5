// `npm run build`: per function, dist/<name>.cjs (one self-contained bundle), dist/<name>.cjs.cache (V8's code
// cache of it, written by starting it once) and dist/<name>.mjs (shared/host/launch.ts: runs the bundle with its
// cache; what the image runs with `node <name>.mjs <name>`). Bundling spares the process the resolution and loading
// of hundreds of files at start-up; the code cache spares it parsing and compiling what a start runs.
import { build, type Plugin } from "esbuild";
import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { builtinModules, createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { functionNames, functionsDir } from "../shared/host/functions.ts";
import { nodeFlagsOf, podLikeEnv } from "../dev/function-process-env.ts";
import { freePort } from "../dev/processes.ts";

const root = join(import.meta.dirname, "..");
const defaultOut = join(root, "dist");

/** A function's files in a build: the launcher a process starts, the bundle it runs and the bundle's code cache. */
export const bundleFiles = (name: string) => [`${name}.mjs`, `${name}.cjs`, `${name}.cjs.cache`] as const;

export async function buildFunctions(only?: string[], out = defaultOut): Promise<Record<string, string>> {
  const names = only ?? functionNames();
  if (!only) await rm(out, { recursive: true, force: true }); // no bundle of a removed function stays behind
  const bundles: Record<string, string> = {};
  await Promise.all(
    names.map(async (name) => {
      const [launcherFile, bundleFile] = bundleFiles(name);
      const outfile = join(out, bundleFile);
      const entry = relative(root, join(functionsDir, name, "index.ts"));
      await build({
        stdin: {
          contents: [
            `import def from "./${entry}";`,
            `import { runHost } from "./shared/host/run-host.ts";`,
            // infra/ runs every function from one image with args: ["<function>"]; a bundle takes that
            // first argument as its own name, so the same args work with or without the image's dispatcher.
            `const args = process.argv.slice(2);`,
            `if (args[0] === ${JSON.stringify(name)}) args.shift();`,
            // What the launcher waits for before it writes the code cache (SERVICE_CA_WRITE_CODE_CACHE).
            `export const started = runHost(def, args).catch((err) => {`,
            `  console.error(JSON.stringify({ level: "error", msg: "failed to start", error: String(err) }));`,
            `  process.exit(1);`,
            `});`,
          ].join("\n"),
          resolveDir: root,
          sourcefile: `${name}-entry.ts`,
          loader: "ts",
        },
        bundle: true,
        platform: "node",
        format: "cjs",
        target: "node24",
        outfile,
        sourcemap: "linked",
        legalComments: "none",
        minify: true,
        keepNames: true,
        logLevel: "warning",
        plugins: [clientNodeWithoutSideEffects, builtinsThroughRequire, neverReached, servedMediaTypes],
      });
      const launcher = join(out, launcherFile);
      await build({
        entryPoints: [join(root, "shared/host/launch.ts")],
        platform: "node",
        format: "esm",
        target: "node24",
        outfile: launcher,
        logLevel: "warning",
      });
      await writeCodeCache(launcher, nodeFlagsOf(name));
      bundles[name] = launcher;
    }),
  );
  return bundles;
}

/**
 * Starts the function once, as a Pod would (in-cluster credentials, the image's environment), so that V8's cache
 * holds everything its start compiles. Its API server is a closed loopback port: nothing leaves the machine.
 */
async function writeCodeCache(launcher: string, nodeFlags: readonly string[]): Promise<void> {
  const env: NodeJS.ProcessEnv = {
    ...podLikeEnv(await freePort()),
    LOG_LEVEL: "error",
    SERVICE_CA_WRITE_CODE_CACHE: "1",
    // The issuer's keys generated ahead finish at no fixed point of the start: what their completion compiles
    // would make the cache differ from build to build. It is compiled when the first key comes instead.
    KEY_POOL_SIZE: "0",
  };
  // A fixed seed makes the cache the same bytes at every build (the image is reproducible); V8 leaves the seed out
  // of the flags a cache must match, and each running process still draws its own. The function's own flags are
  // in that hash: every start of its bundle passes them.
  const child = spawn(process.execPath, ["--random-seed=1", ...nodeFlags, launcher], {
    env,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const code = await new Promise<number | null>((r) => child.once("exit", r));
  clearTimeout(timer);
  if (code !== 0) throw new Error(`writing the code cache of ${launcher}: exit ${code}\n${stderr}`);
}

/**
 * The functions take only KubeConfig from @kubernetes/client-node (shared/kube/rest.ts), but its package declares
 * no `sideEffects`, so esbuild would keep every module its index re-exports: the generated API classes and
 * hundreds of models, ~900 KB of each bundle. Its modules only define classes and functions, so unused ones may go.
 */
const clientNodeWithoutSideEffects: Plugin = {
  name: "client-node-without-side-effects",
  setup(b) {
    const entry = fileURLToPath(import.meta.resolve("@kubernetes/client-node"));
    const home = dirname(entry);
    b.onResolve({ filter: /^@kubernetes\/client-node$/ }, () => ({ path: entry, sideEffects: false }));
    // Inside the package, every import is a relative path with its extension: it names the file itself.
    b.onResolve({ filter: /^\.\.?\/.*\.js$/ }, (args) =>
      args.importer.startsWith(home)
        ? { path: join(args.resolveDir, args.path), sideEffects: false }
        : undefined,
    );
  },
};

/**
 * Node's own modules are required, not imported: importing one into an ES module builds its ES facade, which reads
 * every export, and `node:http`'s lazy `WebSocket`, `CloseEvent` and `MessageEvent` then load all of undici at
 * start-up (most of a cold start's time in Node's own code, measured in BENCHMARKS.md's Cold start).
 */
const builtinsThroughRequire: Plugin = {
  name: "builtins-through-require",
  setup(b) {
    const builtin = new RegExp(
      `^(node:)?(${builtinModules.map((m) => m.replace(/[/]/g, "\\/")).join("|")})$`,
    );
    b.onResolve({ filter: builtin }, (args) =>
      args.namespace === "builtin" || args.kind === "require-call"
        ? { path: args.path, external: true }
        : { path: args.path.replace(/^node:/, ""), namespace: "builtin" },
    );
    b.onLoad({ filter: /.*/, namespace: "builtin" }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(`node:${args.path}`)});`,
      loader: "js",
    }));
  },
};

/**
 * Dependencies of dependencies that no function reaches at run time, left out of the bundles: each would only be
 * parsed (or evaluated) at every start. Each is replaced by a module that says so if it is ever called.
 */
const NEVER_REACHED: Record<string, { importer: RegExp; why: string; stub: string }> = {
  // node-fetch (client-node's) takes Node's own URL (`Url.URL || whatwgUrl.URL`); whatwg-url's tr46 table is 265 KB
  // and is evaluated at load, with the deprecated punycode module.
  "whatwg-url": {
    importer: /node_modules\/node-fetch\//,
    why: "node-fetch uses Node's URL",
    stub: "module.exports = {};",
  },
  // body-parser's decoders (494 KB of code pages): the functions read bodies with express.raw, which decodes none.
  "iconv-lite": {
    importer: /node_modules\/(body-parser|raw-body)\//,
    why: "the functions read raw bodies (express.raw) and decode none",
    stub: `const no = () => { throw new Error("iconv-lite is not in this bundle: the functions read raw bodies (scripts/build.ts)"); };
module.exports = { getDecoder: no, encodingExists: no, decode: no };`,
  },
};

/**
 * The media types the functions answer with, of mime-db's ~2,500: mime-types indexes the whole database when it is
 * loaded (express loads it), 6–8 ms of every start (profiled). Their entries are mime-db's own, picked at build.
 */
export const SERVED_MEDIA_TYPES = ["application/json", "application/octet-stream", "text/html", "text/plain"];

const servedMediaTypes: Plugin = {
  name: "served-media-types",
  setup(b) {
    b.onResolve({ filter: /^mime-db$/ }, (args) => {
      if (!/node_modules\/mime-types\//.test(args.importer))
        throw new Error(
          `mime-db imported from ${args.importer}: scripts/build.ts gives mime-types a subset of it`,
        );
      return { path: "mime-db", namespace: "served-media-types", pluginData: args.importer };
    });
    b.onLoad({ filter: /.*/, namespace: "served-media-types" }, (args) => {
      // The mime-db that mime-types itself resolves.
      const db = createRequire(args.pluginData as string)("mime-db") as Record<string, unknown>;
      const subset = Object.fromEntries(
        SERVED_MEDIA_TYPES.map((t) => {
          if (!db[t]) throw new Error(`${t} is not in mime-db (SERVED_MEDIA_TYPES, scripts/build.ts)`);
          return [t, db[t]];
        }),
      );
      return { contents: `module.exports = ${JSON.stringify(subset)};`, loader: "js" };
    });
  },
};

const neverReached: Plugin = {
  name: "never-reached",
  setup(b) {
    const names = Object.keys(NEVER_REACHED).join("|");
    b.onResolve({ filter: new RegExp(`^(${names})$`) }, (args) => {
      const entry = NEVER_REACHED[args.path]!;
      if (!entry.importer.test(args.importer))
        throw new Error(
          `${args.path} imported from ${args.importer}: scripts/build.ts leaves it out (${entry.why})`,
        );
      return { path: args.path, namespace: "never-reached" };
    });
    b.onLoad({ filter: /.*/, namespace: "never-reached" }, (args) => ({
      contents: NEVER_REACHED[args.path]!.stub,
      loader: "js",
    }));
  },
};

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = performance.now();
  const bundles = await buildFunctions();
  for (const [name, file] of Object.entries(bundles).sort())
    console.log(`built ${name}: ${relative(root, file)}`);
  console.log(
    `${Object.keys(bundles).length} bundles in ${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}
