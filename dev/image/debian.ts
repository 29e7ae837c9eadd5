// Debian packages as image content: `apt-get download` fetches the exact .deb (apt checks it against the signed
// archive index), `dpkg-deb -x` unpacks it into a cache directory, and the image takes files from there rather
// than from whatever the host happens to have installed.
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { cacheDir } from "../cache-dir.ts";

const run = promisify(execFile);

export interface DebianPackage {
  name: string;
  version: string;
  /** the package's files, unpacked (dpkg-deb -x) */
  root: string;
  /** its control file (dpkg-deb -f), what /var/lib/dpkg/status.d/<name> holds for image scanners */
  control: string;
  deb: string;
  sha256: string;
}

export const debianCache = (): string => join(cacheDir(), "debs");

/**
 * The candidate version of each package (as `apt-get install` would pick it), downloaded once into the cache and
 * unpacked beside it. A new Debian point release gives a new version, so a new image digest: that is the truth.
 */
export async function debianPackages(names: string[], cache = debianCache()): Promise<DebianPackage[]> {
  await mkdir(cache, { recursive: true });
  // One line per package: 'url' file size SHA256:hex (in an empty directory: apt prints nothing for a .deb
  // already in the current one)
  const empty = await mkdtemp(join(cache, ".uris-"));
  const { stdout } = await run("apt-get", ["download", "--print-uris", ...names], { cwd: empty }).finally(
    () => rm(empty, { recursive: true, force: true }),
  );
  const uris = stdout
    .trim()
    .split("\n")
    .map((line) => {
      const m = /^'([^']+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$/.exec(line);
      if (!m) throw new Error(`apt-get download --print-uris said "${line}"`);
      return { file: m[2]!, sha256: m[4]! };
    });
  if (uris.length !== names.length)
    throw new Error(`apt-get knows ${uris.length} of ${names.join(", ")}: run apt-get update`);
  return Promise.all(
    names.map(async (name) => {
      const uri = uris.find((u) => u.file.startsWith(`${name}_`));
      if (!uri) throw new Error(`apt-get gave no .deb for ${name}`);
      const deb = join(cache, uri.file);
      if (!existsSync(deb) || (await sha256Of(deb)) !== uri.sha256) {
        const tmp = await mkdtemp(join(cache, ".download-"));
        try {
          await run("apt-get", ["download", name], { cwd: tmp });
          await rename(join(tmp, uri.file), deb);
        } finally {
          await rm(tmp, { recursive: true, force: true });
        }
        if ((await sha256Of(deb)) !== uri.sha256)
          throw new Error(`${deb} does not match the archive's SHA256`);
      }
      const root = `${deb.slice(0, -".deb".length)}.root`;
      if (!existsSync(root)) {
        const tmp = `${root}.tmp-${process.pid}`;
        await rm(tmp, { recursive: true, force: true });
        await run("dpkg-deb", ["-x", deb, tmp]);
        await rename(tmp, root);
      }
      const control = (await run("dpkg-deb", ["-f", deb])).stdout;
      const version = /^Version: (.+)$/m.exec(control)?.[1];
      if (!version) throw new Error(`${deb} has no Version`);
      return { name, version, root, control, deb, sha256: uri.sha256 };
    }),
  );
}

async function sha256Of(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** The shared libraries a dynamically linked binary needs (`ldd`), by soname, and its ELF interpreter. */
export async function sharedLibraries(binary: string): Promise<{ sonames: string[]; interpreter: string }> {
  const { stdout } = await run("ldd", [binary]);
  const sonames: string[] = [];
  let interpreter = "";
  for (const line of stdout.split("\n").map((l) => l.trim())) {
    if (!line || line.startsWith("linux-vdso")) continue;
    const lib = /^(\S+) => /.exec(line);
    if (lib) sonames.push(lib[1]!);
    else if (line.startsWith("/")) interpreter = line.split(" ")[0]!;
    else throw new Error(`ldd ${binary}: "${line}"`);
  }
  if (!interpreter) throw new Error(`ldd ${binary} names no interpreter`);
  return { sonames: sonames.sort(), interpreter };
}
