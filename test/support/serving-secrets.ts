// Is a serving Secret whole and valid? Checked as a user would: openssl verifies the certificate against the
// published bundle, the key matches the certificate, and the names are the Service's.
import { execFile } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type * as k8s from "@kubernetes/client-node";

const run = promisify(execFile);

export interface ServingSecretCheck {
  secret: k8s.V1Secret;
  /** the Service it was issued for */
  service: string;
}

const decode = (s: k8s.V1Secret, key: string) => Buffer.from(s.data?.[key] ?? "", "base64").toString("utf8");

/** Problems with each Secret (empty when all are valid): both keys present and matching, openssl verify OK. */
export async function servingSecretProblems(
  checks: ServingSecretCheck[],
  bundlePem: string,
): Promise<string[]> {
  const problems: string[] = [];
  const dir = await mkdtemp(join(tmpdir(), "serving-secrets-"));
  try {
    await writeFile(join(dir, "bundle.pem"), bundlePem);
    const files: Array<{ file: string; label: string }> = [];
    for (const [i, { secret, service }] of checks.entries()) {
      const label = `${secret.metadata?.namespace}/${secret.metadata?.name}`;
      const crt = decode(secret, "tls.crt");
      const key = decode(secret, "tls.key");
      if (!crt || !key) {
        problems.push(
          `${label}: half-written (tls.crt ${crt ? "present" : "missing"}, tls.key ${key ? "present" : "missing"})`,
        );
        continue;
      }
      let cert: X509Certificate;
      try {
        cert = new X509Certificate(crt);
      } catch (err) {
        problems.push(`${label}: tls.crt does not parse: ${String(err)}`);
        continue;
      }
      const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: "spki", format: "der" });
      let matches = false;
      try {
        matches = spki(createPublicKey(createPrivateKey(key))).equals(spki(cert.publicKey));
      } catch (err) {
        problems.push(`${label}: tls.key does not parse: ${String(err)}`);
        continue;
      }
      if (!matches) problems.push(`${label}: tls.key does not match tls.crt`);
      const want = `DNS:${service}.${secret.metadata?.namespace}.svc`;
      if (!(cert.subjectAltName ?? "").split(", ").includes(want))
        problems.push(`${label}: names ${cert.subjectAltName}, not ${want}`);
      const file = `leaf-${i}.pem`;
      await writeFile(join(dir, file), crt);
      files.push({ file, label });
    }
    // One openssl per 200 certificates: it verifies the first certificate of each file against the bundle.
    for (let i = 0; i < files.length; i += 200) {
      const chunk = files.slice(i, i + 200);
      const { stdout } = await run(
        "openssl",
        ["verify", "-CAfile", "bundle.pem", ...chunk.map((f) => f.file)],
        {
          cwd: dir,
          maxBuffer: 16 << 20,
        },
      ).catch((err: { stdout?: string; stderr?: string }) => ({
        stdout: `${err.stdout ?? ""}${err.stderr ?? ""}`,
      }));
      for (const f of chunk)
        if (!stdout.includes(`${f.file}: OK`)) problems.push(`${f.label}: openssl verify failed`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return problems;
}
