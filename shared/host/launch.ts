// What dist/<function>.mjs is (scripts/build.ts): it runs the function's bundle, <function>.cjs beside it, through
// V8 with the code cache the build wrote by starting that bundle once, <function>.cjs.cache. With it V8 neither
// parses nor compiles what a start runs, which was nearly half of a cold start (BENCHMARKS.md, Cold start). Node's
// own compile cache (NODE_COMPILE_CACHE) keeps only what is compiled before a module runs: for a bundle, its top
// level.
//
// SERVICE_CA_WRITE_CODE_CACHE=1 is the build's mode: start, answer one readiness probe, write the cache, exit.
import { createRequire } from "node:module";
import type * as Fs from "node:fs";
import type * as Path from "node:path";
import type * as Url from "node:url";
import type * as Vm from "node:vm";

// Node's own modules through require: importing them into an ES module would build their ES facades.
const require = createRequire(import.meta.url);
const { existsSync, readFileSync, writeFileSync } = require("node:fs") as typeof Fs;
const { basename, dirname } = require("node:path") as typeof Path;
const { fileURLToPath } = require("node:url") as typeof Url;
const vm = require("node:vm") as typeof Vm;

const bundle = fileURLToPath(import.meta.url).replace(/\.mjs$/, ".cjs");
const cacheFile = `${bundle}.cache`;
const writing = process.env.SERVICE_CA_WRITE_CODE_CACHE === "1";
// V8 keeps the script's name in the cache it writes and puts the running script's in its place when it reads one:
// written under the bare file name, the cache is the same bytes wherever the build put the bundle. A copy, not
// basename()'s slice of the whole path, which V8 would write out with it.
const nameInCache = [...basename(bundle)].join("");

/** The bundle, compiled from its cache where this Node accepts it; neither the cache's bytes nor the file stay held. */
function compileBundle(): Vm.Script {
  const cachedData = !writing && existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
  // The wrapper Node's CommonJS loader puts around a module, so the bundle runs as it would from require().
  const compiled = new vm.Script(
    `(function (exports, require, module, __filename, __dirname) {${readFileSync(bundle, "utf8")}\n})`,
    { filename: writing ? nameInCache : bundle, cachedData },
  );
  if (cachedData && compiled.cachedDataRejected)
    // Not an error (V8 compiled the bundle itself), but every start is slower: another Node binary, say, or V8
    // flags other than the ones the cache was written under (dev/function-process-env.ts, nodeFlagsOf).
    console.error(
      JSON.stringify({
        time: new Date().toISOString(),
        level: "warn",
        msg: "code cache rejected by this Node binary or its flags: starting without it",
        cache: cacheFile,
        node: process.version,
        flags: process.execArgv,
      }),
    );
  return compiled;
}

const script = compileBundle();
const module = { exports: {} as { started?: Promise<void> } };
(script.runInThisContext() as (...args: unknown[]) => void)(
  module.exports,
  require,
  module,
  bundle,
  dirname(bundle),
);

if (writing)
  void (async () => {
    await module.exports.started;
    // The probe's path too: routing and the readiness handler are part of every start.
    await fetch(`http://127.0.0.1:${process.env.PORT}/health/readiness`).then((r) => r.arrayBuffer());
    writeFileSync(cacheFile, script.createCachedData());
    process.exit(0);
  })();
