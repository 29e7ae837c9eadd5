// The one-node cluster's own images, made from static binaries (ko-style, at /ko-app/<name>) so nothing is ever
// pulled: the pod sandbox (pause), CoreDNS, and a probe that tests run inside pods. Binaries and images are cached
// under a key of their inputs, so a second start builds and writes nothing.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { writeImage, type ImageConfig } from "../image/oci.ts";
import { cacheDir } from "../cache-dir.ts";

const run = promisify(execFile);
const goDir = join(import.meta.dirname, "go");
const goEnv = { ...process.env, PATH: `/usr/local/go/bin:${process.env.PATH}`, CGO_ENABLED: "0" };

export interface NodeImage {
  /** the reference pods name, "localhost/service-ca-functions/<name>:<key>" */
  name: string;
  /** a docker-archive for `ctr images import` */
  archive: string;
}

const sha = (...parts: (string | Buffer)[]) => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p).update("\0");
  return h.digest("hex");
};

let goBuild: Promise<string> | undefined;

/** Builds dev/cluster/go (pause, probe) once per source and Go version; returns the directory holding both. */
export function clusterBinaries(): Promise<string> {
  goBuild ??= (async () => {
    const { stdout: goVersion } = await run("go", ["version"], { env: goEnv });
    const sources: (string | Buffer)[] = [goVersion];
    for (const rel of ["go.mod", "pause/main.go", "probe/main.go"])
      sources.push(rel, await readFile(join(goDir, rel)));
    const out = join(cacheDir(), `cluster-go-${sha(...sources).slice(0, 16)}`);
    if (existsSync(join(out, "probe"))) return out;
    const tmp = `${out}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(tmp, { recursive: true });
    await run("go", ["build", "-trimpath", "-ldflags=-s -w", "-o", `${tmp}/`, "./pause", "./probe"], {
      cwd: goDir,
      env: goEnv,
    });
    await rm(out, { recursive: true, force: true });
    await rename(tmp, out);
    return out;
  })();
  return goBuild;
}

/** An image of one static binary at /ko-app/<name>, written once per binary and config. */
export async function binaryImage(
  name: string,
  binary: string,
  config: Omit<ImageConfig, "entrypoint"> = {},
): Promise<NodeImage> {
  const writer = await readFile(join(import.meta.dirname, "../image/oci.ts"));
  const key = sha(name, await readFile(binary), JSON.stringify(config), writer).slice(0, 16);
  const ref = `localhost/service-ca-functions/${name}:${key}`;
  const outDir = join(cacheDir(), "node-images", `${name}-${key}`);
  const archive = join(outDir, `${name}.tar`);
  if (existsSync(join(outDir, "done"))) return { name: ref, archive };
  const tmp = `${outDir}.tmp-${process.pid}`;
  await rm(tmp, { recursive: true, force: true });
  await writeImage({
    layers: [[{ path: `/ko-app/${name}`, fromFile: binary, mode: 0o755 }]],
    config: { ...config, entrypoint: [`/ko-app/${name}`] },
    name: ref,
    outDir: tmp,
    epoch: 0,
  });
  await writeFile(join(tmp, "done"), ref + "\n");
  await rm(outDir, { recursive: true, force: true });
  await rename(tmp, outDir);
  return { name: ref, archive };
}

/** The sandbox image containerd's CRI starts every pod with. */
export async function pauseImage(): Promise<NodeImage> {
  return binaryImage("pause", join(await clusterBinaries(), "pause"));
}

/** CoreDNS as the Go build made it (cluster.local only, no forward plugin), run with -conf from its ConfigMap. */
export function corednsImage(binDir: string): Promise<NodeImage> {
  return binaryImage("coredns", join(binDir, "coredns"));
}

/** dev/cluster/go/probe: `serve` by default; tests `kubectl exec` its whoami, resolve and query commands. */
export async function probeImage(): Promise<NodeImage> {
  return binaryImage("probe", join(await clusterBinaries(), "probe"), { cmd: ["serve"] });
}
