// `npm run build:plugin`: the kubectl plugin as one executable file, dist/kubectl-service_ca (`#!/usr/bin/env node`);
// copy it onto the PATH, or install the package, whose `bin` names it.
import { build } from "esbuild";
import { chmod } from "node:fs/promises";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");

export async function buildPlugin(outfile = join(root, "dist", "kubectl-service_ca")): Promise<string> {
  await build({
    entryPoints: [join(root, "plugin", "kubectl-service_ca.ts")],
    outfile,
    bundle: true,
    platform: "node",
    // An ES module: inside this package ("type": "module", so also as npm's bin) it must be one; copied alone,
    // Node (20.19+, 22.7+) detects it as one from its import syntax. The CommonJS dependencies need require.
    format: "esm",
    target: "node20",
    banner: {
      js: `#!/usr/bin/env node\nimport { createRequire as __cr } from "node:module"; const require = __cr(import.meta.url);`,
    },
    legalComments: "none",
    logLevel: "warning",
  });
  await chmod(outfile, 0o755);
  return outfile;
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(await buildPlugin());
