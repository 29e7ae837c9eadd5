// Real TLS handshakes and openssl checks against certificates the system wrote.
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import type { AddressInfo } from "node:net";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Serves TLS with `cert`/`key` on loopback, connects trusting only `ca` with SNI `servername`; resolves on a verified handshake. */
export async function handshake(opts: {
  cert: string;
  key: string;
  ca: string;
  servername: string;
}): Promise<void> {
  const server = createServer({ cert: opts.cert, key: opts.key }, (s) => s.end("hello"));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as AddressInfo;
  try {
    await new Promise<void>((resolve, reject) => {
      const sock = connect({ host: "127.0.0.1", port, ca: opts.ca, servername: opts.servername }, () => {
        sock.end();
        resolve();
      });
      sock.once("error", reject);
    });
  } finally {
    await new Promise((r) => server.close(r));
  }
}

export async function openssl(args: string[], files: Record<string, string> = {}): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "openssl-"));
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  const { stdout, stderr } = await run("openssl", args, { cwd: dir });
  return stdout + stderr;
}

/**
 * `openssl verify` of a served chain (leaf first, then any intermediates, which are given as untrusted) against
 * `bundlePem`, at `at` when given.
 */
export async function opensslVerifies(bundlePem: string, chainPem: string, at?: Date): Promise<boolean> {
  const [leaf, ...rest] =
    chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  const files: Record<string, string> = { "ca.pem": bundlePem, "leaf.pem": leaf ?? "" };
  const args = [
    "verify",
    ...(at ? ["-attime", String(Math.floor(at.getTime() / 1000))] : []),
    "-CAfile",
    "ca.pem",
  ];
  if (rest.length) {
    files["chain.pem"] = rest.join("");
    args.push("-untrusted", "chain.pem");
  }
  try {
    return /leaf.pem: OK/.test(await openssl([...args, "leaf.pem"], files));
  } catch {
    return false;
  }
}

export type Age = "old" | "new";

/** The four old/new certificate × old/new bundle pairs a CA overlap must all pass, each with its names. */
export function overlapPairs<C>(
  certificates: Record<Age, C>,
  bundles: Record<Age, string>,
): Array<{ cert: Age; bundle: Age; certificate: C; bundlePem: string }> {
  return (["old", "new"] as const).flatMap((cert) =>
    (["old", "new"] as const).map((bundle) => ({
      cert,
      bundle,
      certificate: certificates[cert],
      bundlePem: bundles[bundle],
    })),
  );
}
