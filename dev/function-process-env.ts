// The environment every function's Node process runs with: in the image (its config's Env, so on any cluster) and
// when started here from its bundle, so what the benchmarks measure is what is deployed (BENCHMARKS.md, Memory of
// every function). A function's own container env in infra/ wins (expiry-scan sets its own NODE_OPTIONS).
export const FUNCTION_PROCESS_ENV: Readonly<Record<string, string>> = {
  // V8's young generation stays at 1 MB semi-spaces instead of growing to 16 MB each under load.
  NODE_OPTIONS: "--max-semi-space-size=1",
  // glibc serves allocations of 32 KiB and more (V8's compiler zones among them) from their own mappings, given
  // back when freed; by default the memory that compiling the bundle took stays in the process for good.
  MALLOC_MMAP_THRESHOLD_: "32768",
};

/**
 * The flags on a function's Node command line, before the dispatcher: in its container's command (infra/), in the
 * start that writes its bundle's code cache, and in every start of its bundle here. V8 accepts a code cache only
 * under the flags it was written with, so these must agree (test/unit/function-command.test.ts).
 *
 * --max-opt=1 keeps V8 on its two lower tiers (Ignition, Sparkplug), never Maglev or TurboFan: the issuer's work is
 * RSA key generation in OpenSSL and waiting on the API server, and the optimizing compilers' pages of the Node
 * binary and their zones were 12–17 MB of its peak RSS through a burst (BENCHMARKS.md, What changed). Not for the
 * functions whose work is JavaScript: on the lower tiers the 10,000-Service scan took 1.1–1.5× as long in three
 * pairs of runs. V8 refuses the flag in NODE_OPTIONS, and v8.setFlagsFromString does not change tiering once V8
 * runs, hence the command line.
 */
const NODE_FLAGS: Readonly<Record<string, readonly string[]>> = {
  "issue-serving-cert": ["--max-opt=1"],
};

export const nodeFlagsOf = (fn: string): readonly string[] => NODE_FLAGS[fn] ?? [];

/** The image's whole environment (dev/image/service-image.ts writes it into the image's config). */
export const IMAGE_ENV: Readonly<Record<string, string>> = {
  PATH: "/usr/local/bin:/usr/bin:/bin",
  NODE_ENV: "production",
  ...FUNCTION_PROCESS_ENV,
};

/**
 * A function's process as in a Pod of the image, for starts that must reach no cluster (the build's code cache,
 * bench:cold-start): the image's environment and in-cluster credentials, whose API server is a closed loopback port,
 * and nothing of the caller's environment, so that what the start runs does not depend on who started it.
 */
export function podLikeEnv(port: number): NodeJS.ProcessEnv {
  return {
    ...IMAGE_ENV,
    PORT: String(port),
    HOST: "127.0.0.1",
    KUBERNETES_SERVICE_HOST: "127.0.0.1",
    KUBERNETES_SERVICE_PORT: "9",
  };
}
