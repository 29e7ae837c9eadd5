// `npm run release`: the image (as `npm run image` builds it) and dist/install.yaml, everything infra/ holds
// rendered by kustomize with the image pinned by its digest, so a cluster runs exactly the image built here:
// kubectl apply -f install.yaml. infra/ itself keeps naming the image by tag.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { execFile } from "node:child_process";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { buildControlPlane } from "../dev/controlplane/control-plane.ts";
import { buildImage, imageRepository } from "../dev/image/service-image.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");
const log = (l: string) => console.log(`[release] ${l}`);

const image = await buildImage({ log });
log(`image ${image.name} ${image.digest}`);
const kubectl = join(await buildControlPlane(log), "kubectl");

// A kustomization of its own over infra/: kustomize's images transformer swaps the tag for the digest.
const overlay = join(root, "dist", "release");
await rm(overlay, { recursive: true, force: true });
await mkdir(overlay, { recursive: true });
await writeFile(
  join(overlay, "kustomization.yaml"),
  [
    "apiVersion: kustomize.config.k8s.io/v1beta1",
    "kind: Kustomization",
    "resources:",
    `  - ${relative(overlay, join(root, "infra"))}`,
    "images:",
    `  - name: ${imageRepository}`,
    `    digest: ${image.digest}`,
    "",
  ].join("\n"),
);
const { stdout: rendered } = await run(kubectl, ["kustomize", overlay], { maxBuffer: 64 << 20 });
await rm(overlay, { recursive: true, force: true });

const pinned = rendered.split(`image: ${imageRepository}@${image.digest}`).length - 1;
const byTag = rendered.match(new RegExp(`image: ${imageRepository}:\\S+`, "g")) ?? [];
if (pinned === 0 || byTag.length)
  throw new Error(`install.yaml pins ${pinned} containers, names ${byTag.length} by tag`);

const out = join(root, "dist", "install.yaml");
const head = [
  `# service-ca-functions ${image.name.split(":").pop()}: kubectl apply -f install.yaml`,
  `# Rendered from infra/ (commit ${image.revision}) by npm run release; every function runs`,
  `# ${imageRepository}@${image.digest}.`,
  "",
].join("\n");
await writeFile(out, head + rendered);
const docs = (await readFile(out, "utf8")).split(/^---$/m).length;
console.log(`${relative(root, out)}: ${docs} objects, ${pinned} containers pinned to ${image.digest}`);
