// Knative Eventing on the one-node cluster, installed the way `ko apply -f config/core/` installs it: the
// module's own YAML, each `ko://<import path>` replaced by an image of that program's static binary (ko's
// layout: /ko-app/<name>, KO_DATA_PATH), imported into containerd so nothing is pulled. The controller and
// webhook then run as pods and render the sources' adapters as Deployments themselves.
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join, relative } from "node:path";
import yaml from "js-yaml";
import { goModuleDir, KNATIVE_EVENTING } from "../controlplane/go-modules.ts";
import { binaryImage, type NodeImage } from "./images.ts";

export const KNATIVE_NAMESPACE = "knative-eventing";

/** The programs of config/core/ this repository builds (dev/controlplane/build-binaries.sh --node). */
const built = ["controller", "webhook", "apiserver_receive_adapter", "mtping"] as const;

/**
 * Left out of config/core/: Deployments of features this system does not use (JobSink, RequestReply) whose
 * programs are not built here, and the webhook's HorizontalPodAutoscaler (no metrics server on the node).
 */
const leftOut = [
  "deployments/job-sink.yaml",
  "deployments/request-reply.yaml",
  "deployments/webhook-hpa.yaml",
];

/**
 * Images the controller only names in environment variables, for features this system does not use; it reads
 * them from two ConfigMaps that Knative's release adds beside config/core/. They name images that do not
 * exist, so using such a feature here fails visibly instead of pulling.
 */
const unusedImages = {
  "eventing-integrations-images": [
    "timer-source",
    "aws-s3-source",
    "aws-sqs-source",
    "aws-ddb-streams-source",
    "log-sink",
    "aws-s3-sink",
    "aws-sqs-sink",
    "aws-sns-sink",
  ],
  "eventing-transformations-images": ["transform-jsonata"],
};
const notBuilt = (what: string) => `localhost/service-ca-functions/not-built:${what}`;

export interface EventingImages {
  byProgram: Record<string, NodeImage>;
  all: NodeImage[];
}

/** One image per Knative program, ko-style, run as the nonroot user ko's default base image has. */
export async function eventingImages(binDir: string): Promise<EventingImages> {
  const byProgram: Record<string, NodeImage> = {};
  for (const name of built)
    byProgram[name] = await binaryImage(name, join(binDir, name), {
      user: "65532:65532",
      env: { KO_DATA_PATH: "/var/run/ko" },
    });
  return { byProgram, all: Object.values(byProgram) };
}

/**
 * Feature flags this system runs with, in config-features as the controller first reads it: OIDC sender
 * authentication, so every source sends a token of its own identity for its sink's audience (README,
 * "Authenticated delivery").
 */
export const eventingFeatures = { "authentication-oidc": "enabled" };

function withFeatures(doc: unknown): unknown {
  const d = doc as { kind?: string; metadata?: { name?: string }; data?: Record<string, string> };
  if (d.kind !== "ConfigMap" || d.metadata?.name !== "config-features") return doc;
  return { ...d, data: { ...d.data, ...eventingFeatures } };
}

async function yamlFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".yaml"))
    .map((e) => join(e.parentPath, e.name))
    .sort();
}

/** config/core/ as one manifest, every ko:// reference resolved to a built (or a named, not-built) image. */
export async function eventingManifest(images: EventingImages, outDir: string): Promise<string> {
  const core = join(await goModuleDir(KNATIVE_EVENTING), "config/core");
  const docs: string[] = [];
  for (const file of await yamlFiles(core)) {
    if (leftOut.includes(relative(core, file))) continue;
    const text = (await readFile(file, "utf8")).replace(
      /ko:\/\/knative\.dev\/eventing\/cmd\/([a-z_]+)/g,
      (_, program: string) => images.byProgram[program]?.name ?? notBuilt(program),
    );
    for (const doc of yaml.loadAll(text))
      if (doc) docs.push(yaml.dump(withFeatures(doc), { noRefs: true, lineWidth: -1 }));
  }
  for (const [name, keys] of Object.entries(unusedImages))
    docs.push(
      yaml.dump({
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: KNATIVE_NAMESPACE },
        data: Object.fromEntries(keys.map((k) => [k, notBuilt(k)])),
      }),
    );
  const out = join(outDir, "knative-eventing.yaml");
  await writeFile(out, docs.join("---\n"));
  return out;
}
