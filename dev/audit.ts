// Counting what the API server saw, from its own audit log (write verbs at Metadata level), not from the code.
import { randomUUID } from "node:crypto";
import { open, stat } from "node:fs/promises";
import * as k8s from "@kubernetes/client-node";
import { waitFor } from "./processes.ts";

export interface AuditEvent {
  verb: string;
  requestURI: string;
  user: { username: string; extra?: Record<string, string[]> };
  objectRef?: {
    resource?: string;
    namespace?: string;
    name?: string;
    apiGroup?: string;
    subresource?: string;
  };
  responseStatus?: { code?: number };
}

/** Requests that ask the API server a question and persist nothing (they are `create`s in the audit log). */
const REVIEWS = new Set(["tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews"]);

/** Who made a request: a user, and optionally one token of theirs (its JTI), so parallel runs do not mix. */
export interface Identity {
  username: string;
  credentialId?: string;
}

export const serviceAccountUser = (name: string, namespace = "service-ca") =>
  `system:serviceaccount:${namespace}:${name}`;

/** The identity of the ServiceAccount token in a kubeconfig: the API server audits each token's JTI. */
export async function tokenIdentity(kubeconfigPath: string): Promise<Identity> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const token = kc.getCurrentUser()?.token ?? "";
  const claims = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
    sub?: string;
    jti?: string;
  };
  if (!claims.sub) throw new Error(`${kubeconfigPath} holds no ServiceAccount token`);
  return { username: claims.sub, credentialId: claims.jti ? `JTI=${claims.jti}` : undefined };
}

const madeBy = (e: AuditEvent, who: Identity) =>
  e.user.username === who.username &&
  (who.credentialId === undefined ||
    (e.user.extra?.["authentication.kubernetes.io/credential-id"] ?? []).includes(who.credentialId));

/** Where the audit log ends now: pass it to `auditSince` to see only what happened after. */
export async function auditMark(cluster: { auditLog: string }): Promise<number> {
  return (await stat(cluster.auditLog).catch(() => ({ size: 0 }))).size;
}

/**
 * Every completed request logged after `mark`. A dry-run write by the admin goes in last and is waited for, so
 * every request that finished before this call is in the log when it returns.
 */
export async function auditSince(
  cluster: { auditLog: string; kc: k8s.KubeConfig },
  mark: number,
): Promise<AuditEvent[]> {
  const barrier = `audit-barrier-${randomUUID().slice(0, 8)}`;
  await cluster.kc.makeApiClient(k8s.CoreV1Api).createNamespacedConfigMap({
    namespace: "default",
    body: { metadata: { name: barrier } },
    dryRun: "All",
  });
  return waitFor(
    "the audit log to catch up",
    async () => {
      const events = await readFrom(cluster.auditLog, mark);
      return events.some((e) => e.objectRef?.name === barrier) ? events : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
}

async function readFrom(path: string, offset: number): Promise<AuditEvent[]> {
  const file = await open(path, "r");
  try {
    const { size } = await file.stat();
    const buf = Buffer.alloc(Math.max(0, size - offset));
    await file.read(buf, 0, buf.length, offset);
    return buf
      .toString("utf8")
      .split("\n")
      .filter((l) => l.includes('"stage":"ResponseComplete"'))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as AuditEvent];
        } catch {
          return []; // the last line may still be being written
        }
      });
  } finally {
    await file.close();
  }
}

/** Writes (create, update, patch, delete), attempted or done, by `who`; reviews are not writes. */
export const writesBy = (events: AuditEvent[], who: Identity) =>
  events.filter((e) => madeBy(e, who) && !REVIEWS.has(e.objectRef?.resource ?? ""));

/** TokenReviews and SubjectAccessReviews `who` asked for. */
export const reviewsBy = (events: AuditEvent[], who: Identity) =>
  events.filter((e) => madeBy(e, who) && REVIEWS.has(e.objectRef?.resource ?? ""));

export const succeeded = (e: AuditEvent) => (e.responseStatus?.code ?? 0) < 300;

export const describeWrite = (e: AuditEvent) =>
  `${e.verb} ${e.objectRef?.resource ?? "?"} ${e.objectRef?.namespace ?? ""}/${e.objectRef?.name ?? ""} → ${e.responseStatus?.code}`;
