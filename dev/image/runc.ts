// Runs a container of an image with runc the way a kubelet (through containerd's CRI) runs a pod's container: the
// image's entrypoint, user, working dir and env, the pod's args and env, a read-only root, the ServiceAccount's
// token, CA and namespace mounted read-only at /var/run/secrets/kubernetes.io/serviceaccount, and
// KUBERNETES_SERVICE_HOST/PORT. Its network is the host's (hostNetwork: true), so it reaches an API server and is
// reached on 127.0.0.1. Not applied: containerd's RuntimeDefault seccomp profile and AppArmor.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { chown, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The part of an OCI image config a runtime uses. */
export interface ImageRuntimeConfig {
  User?: string;
  WorkingDir?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  Labels?: Record<string, string>;
}

export interface UnpackedImage {
  rootfs: string;
  config: ImageRuntimeConfig;
  /** the whole config blob, parsed */
  imageConfig: { config?: ImageRuntimeConfig; rootfs: { diff_ids: string[] }; [k: string]: unknown };
}

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

/**
 * Unpacks the image tagged `tag` in an OCI layout into `rootfs` with GNU tar, checking every blob's digest and
 * size on the way (as a runtime does before it trusts a pulled layer). Layers with whiteouts are not supported.
 */
export async function unpackImage(ociDir: string, tag: string, rootfs: string): Promise<UnpackedImage> {
  const blob = (d: Descriptor) => join(ociDir, "blobs", "sha256", d.digest.slice("sha256:".length));
  const checked = async (d: Descriptor): Promise<string> => {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of createReadStream(blob(d))) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
    if (`sha256:${hash.digest("hex")}` !== d.digest || size !== d.size)
      throw new Error(`blob ${d.digest} does not match its descriptor`);
    return blob(d);
  };
  const index = JSON.parse(await readFile(join(ociDir, "index.json"), "utf8")) as { manifests: Descriptor[] };
  const top = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === tag);
  if (!top) throw new Error(`no image tagged ${tag} in ${ociDir}`);
  const manifest = JSON.parse(await readFile(await checked(top), "utf8")) as {
    config: Descriptor;
    layers: Descriptor[];
  };
  const imageConfig = JSON.parse(
    await readFile(await checked(manifest.config), "utf8"),
  ) as UnpackedImage["imageConfig"];
  await mkdir(rootfs, { recursive: true });
  for (const layer of manifest.layers) {
    if (!layer.mediaType.endsWith("tar+gzip")) throw new Error(`layer ${layer.digest} is ${layer.mediaType}`);
    await run("tar", [
      "-xzf",
      await checked(layer),
      "-C",
      rootfs,
      "--same-owner",
      "--same-permissions",
      "--numeric-owner",
    ]);
  }
  return { rootfs, config: imageConfig.config ?? {}, imageConfig };
}

export interface ContainerSpec {
  /** an unpacked image (unpackImage) */
  image: UnpackedImage;
  /** the container's command, which replaces the image's entrypoint (as in a pod); the entrypoint if not given */
  command?: string[];
  /** the pod's args (after the command) */
  args: string[];
  /** the container's env, after the image's (later wins, as in a pod) */
  env?: Record<string, string>;
  /** the ServiceAccount volume a kubelet projects */
  serviceAccount?: { token: string; caCrt: string; namespace: string };
  /** the API server, as the `kubernetes` Service's env vars name it */
  kubernetesService?: { host: string; port: number };
  /** resources.limits.memory in bytes */
  memoryLimit?: number;
  /** what the image config's User names, if not given (runAsUser/runAsGroup) */
  user?: { uid: number; gid: number };
  hostname?: string;
}

export interface RunningContainer {
  id: string;
  /** runc's state directory for this container: `runc --root <stateDir> state <id>` */
  stateDir: string;
  /** stdout and stderr so far */
  output(): string;
  /** resolves with the exit code once the container's process ends */
  exited: Promise<number>;
  /** SIGTERM, then SIGKILL after `graceMs`; then `runc delete` and the bundle goes */
  remove(graceMs?: number): Promise<void>;
}

/** Runs a container in a bundle of its own (its own runc state dir, its own cgroup) until it exits or is removed. */
export async function runContainer(spec: ContainerSpec): Promise<RunningContainer> {
  const bundle = await mkdtemp(join(tmpdir(), "scf-container-"));
  const id = `scf-${process.pid}-${bundle.slice(-6)}`;
  const state = join(bundle, "state");
  let child: ChildProcess | undefined;
  const cleanup = async () => {
    await run("runc", ["--root", state, "delete", "--force", id]).catch(() => {});
    await rm(bundle, { recursive: true, force: true });
  };
  try {
    const mounts: object[] = [...kernelMounts()];
    const files = join(bundle, "pod");
    await mkdir(files);
    // What a kubelet writes for every pod and bind-mounts into each container.
    const hostname = spec.hostname ?? id;
    await writeFile(
      join(files, "hosts"),
      `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n`,
    );
    await writeFile(join(files, "hostname"), `${hostname}\n`);
    await writeFile(join(files, "resolv.conf"), await readFile("/etc/resolv.conf", "utf8").catch(() => ""));
    await writeFile(join(files, "termination-log"), "");
    for (const [file, at, ro] of [
      ["hosts", "/etc/hosts", true],
      ["hostname", "/etc/hostname", true],
      ["resolv.conf", "/etc/resolv.conf", true],
      ["termination-log", "/dev/termination-log", false],
    ] as const)
      mounts.push(bind(join(files, file), at, ro));

    const user = spec.user ?? userOf(spec.image.config.User);
    if (spec.serviceAccount) {
      const sa = join(files, "serviceaccount");
      await mkdir(sa);
      // The kubelet gives the token to the pod's runAsUser, mode 0600, when there is no fsGroup.
      await writeFile(join(sa, "token"), spec.serviceAccount.token, { mode: 0o600 });
      await chown(join(sa, "token"), user.uid, user.gid);
      await writeFile(join(sa, "ca.crt"), spec.serviceAccount.caCrt, { mode: 0o644 });
      await writeFile(join(sa, "namespace"), spec.serviceAccount.namespace, { mode: 0o644 });
      mounts.push(bind(sa, "/var/run/secrets/kubernetes.io/serviceaccount", true));
    }

    const env = new Map<string, string>();
    env.set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for (const kv of spec.image.config.Env ?? []) {
      const i = kv.indexOf("=");
      env.set(kv.slice(0, i), kv.slice(i + 1));
    }
    env.set("HOSTNAME", hostname);
    for (const [k, v] of Object.entries(spec.env ?? {})) env.set(k, v);
    if (spec.kubernetesService) {
      const { host, port } = spec.kubernetesService;
      for (const [k, v] of Object.entries({
        KUBERNETES_SERVICE_HOST: host,
        KUBERNETES_SERVICE_PORT: String(port),
        KUBERNETES_SERVICE_PORT_HTTPS: String(port),
        KUBERNETES_PORT: `tcp://${host}:${port}`,
        KUBERNETES_PORT_443_TCP: `tcp://${host}:${port}`,
        KUBERNETES_PORT_443_TCP_PROTO: "tcp",
        KUBERNETES_PORT_443_TCP_PORT: String(port),
        KUBERNETES_PORT_443_TCP_ADDR: host,
      }))
        env.set(k, v);
    }

    const config = {
      ociVersion: "1.0.2",
      process: {
        terminal: false,
        user: { uid: user.uid, gid: user.gid, additionalGids: [user.gid] },
        args: [...(spec.command ?? spec.image.config.Entrypoint ?? []), ...spec.args],
        env: [...env].map(([k, v]) => `${k}=${v}`),
        cwd: spec.image.config.WorkingDir || "/",
        // securityContext: capabilities drop [ALL], allowPrivilegeEscalation: false
        capabilities: { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] },
        noNewPrivileges: true,
        oomScoreAdj: 1000,
      },
      root: { path: spec.image.rootfs, readonly: true }, // readOnlyRootFilesystem: true
      hostname,
      mounts,
      linux: {
        // no network namespace: the host's, as hostNetwork: true
        namespaces: [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }],
        cgroupsPath: `/${id}`,
        resources: {
          devices: [{ allow: false, access: "rwm" }],
          ...(spec.memoryLimit ? { memory: { limit: spec.memoryLimit } } : {}),
        },
        // containerd's defaults
        maskedPaths: [
          "/proc/acpi",
          "/proc/asound",
          "/proc/kcore",
          "/proc/keys",
          "/proc/latency_stats",
          "/proc/timer_list",
          "/proc/timer_stats",
          "/proc/sched_debug",
          "/proc/scsi",
          "/sys/firmware",
        ],
        readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
      },
    };
    await writeFile(join(bundle, "config.json"), JSON.stringify(config, null, 2));

    let out = "";
    child = spawn("runc", ["--root", state, "run", "--bundle", bundle, id], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const started = child;
    const exited = new Promise<number>((resolve) =>
      started.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 0))),
    );
    let removed: Promise<void> | undefined;
    return {
      id,
      stateDir: state,
      output: () => out,
      exited,
      remove: (graceMs = 5000) =>
        (removed ??= (async () => {
          if (started.exitCode === null && started.signalCode === null) {
            await run("runc", ["--root", state, "kill", id, "TERM"]).catch(() => {});
            const timer = setTimeout(
              () => void run("runc", ["--root", state, "kill", id, "KILL"]).catch(() => {}),
              graceMs,
            );
            await exited;
            clearTimeout(timer);
          }
          await cleanup();
        })()),
    };
  } catch (err) {
    child?.kill("SIGKILL");
    await cleanup();
    throw err;
  }
}

function userOf(user: string | undefined): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(user ?? "0");
  if (!m) throw new Error(`the image's User "${user}" is not numeric: give ContainerSpec.user`);
  return { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
}

const bind = (source: string, destination: string, readonly: boolean) => ({
  destination,
  type: "bind",
  source,
  options: ["rbind", "rprivate", readonly ? "ro" : "rw"],
});

/** The mounts every container gets from containerd. */
function kernelMounts(): object[] {
  return [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
    {
      destination: "/sys/fs/cgroup",
      type: "cgroup",
      source: "cgroup",
      options: ["nosuid", "noexec", "nodev", "relatime", "ro"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
  ];
}
