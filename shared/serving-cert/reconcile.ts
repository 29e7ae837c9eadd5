// Brings one Service's serving-certificate Secret to the state it should have, writing only what differs.
import { retryOnConflict } from "../kube/conflicts.ts";
import type * as k8s from "@kubernetes/client-node";
import { servingHostnames, shortHostnames, signServingCertificate, type KeyAlgorithm } from "../pki/index.ts";
import { isConflict, type Kube } from "../kube/client.ts";
import { mergePatch, readOptional, write } from "../kube/objects.ts";
import { recordEvent } from "../kube/events.ts";
import { FunctionError } from "../runtime/errors.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import type { WorkMetrics } from "../runtime/work-metrics.ts";
import type { KeyPool } from "../pki/key-pool.ts";
import type { CaMaterial, CaStore } from "../ca-store/store.ts";
import { MANAGED_BY_LABEL } from "../ca-store/layout.ts";
import {
  annotations,
  failureCount,
  MAX_FAILURES,
  originatingUid,
  requestedSecretName,
  wantsShortNames,
} from "./annotations.ts";
import { extraKeys, reissueReason, type SecretView } from "./decide.ts";

export interface ServingCertDeps {
  kube: Kube;
  ca: CaStore;
  clock: Clock;
  log: Logger;
  validityDays: number;
  refreshFraction: number;
  /** Pre-generated RSA keys; without one, each certificate generates its key while the caller waits. */
  keyPool?: KeyPool;
  metrics?: WorkMetrics;
}

export interface ReconcileOptions {
  /**
   * Count a failure again even when the Service already shows the same error. Events repeat (including the
   * update our own annotation write causes), so only the periodic scan counts repeats: a foreign Secret costs
   * one attempt per scan, and the tenth gives up.
   */
  countRepeatedFailure?: boolean;
}

export type Outcome =
  "service-gone" | "not-annotated" | "gave-up" | "foreign-secret" | "issued" | "stripped" | "current";

export interface ReconcileResult {
  outcome: Outcome;
  secret?: string;
  reason?: string;
}

const COMPONENT = "service-ca-functions/issue-serving-cert";
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const decodeData = (data: Record<string, string> | undefined) =>
  Object.fromEntries(
    Object.entries(data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
  );

export async function reconcileService(
  deps: ServingCertDeps,
  namespace: string,
  name: string,
  opts: ReconcileOptions = {},
): Promise<ReconcileResult> {
  // A lost create/update race means another replica wrote first: re-read and judge again.
  return retryOnConflict(
    4,
    () => reconcileOnce(deps, namespace, name, opts),
    (attempt) => deps.log.debug("write conflict; re-reading", { service: `${namespace}/${name}`, attempt }),
  );
}

export type Verdict =
  | { kind: "not-annotated" }
  | { kind: "gave-up"; secretName: string }
  | { kind: "foreign"; secretName: string; message: string }
  | { kind: "issue"; secretName: string; reason: string; hostnames: string[]; keyAlgorithm: KeyAlgorithm }
  | { kind: "strip"; secretName: string; keys: string[] }
  | { kind: "current"; secretName: string };

/** What a Service's Secret needs, judged from objects already read (by a GET or from a list page). */
export async function judge(
  svc: k8s.V1Service,
  secret: k8s.V1Secret | undefined,
  material: CaMaterial,
  now: Date,
  refreshFraction: number,
): Promise<Verdict> {
  const namespace = svc.metadata!.namespace!;
  const secretName = requestedSecretName(svc);
  if (!secretName) return { kind: "not-annotated" };
  if (failureCount(svc) >= MAX_FAILURES) return { kind: "gave-up", secretName };
  const uid = svc.metadata?.uid ?? "";
  if (secret && originatingUid(secret) !== uid) {
    const message = `Secret ${namespace}/${secretName} exists and was not created for this Service (uid ${uid}); it is left untouched. Delete it or choose another name.`;
    return { kind: "foreign", secretName, message };
  }
  const hostnames = hostnamesFor(svc);
  const keyAlgorithm: KeyAlgorithm =
    svc.metadata?.annotations?.[annotations.keyAlgorithm] === "ecdsa-p256" ? "ecdsa-p256" : "rsa-2048";
  const view: SecretView | undefined = secret
    ? { annotations: secret.metadata?.annotations ?? {}, data: decodeData(secret.data) }
    : undefined;
  const reason = await reissueReason(view, {
    hostnames,
    keyAlgorithm,
    currentCa: material.signer.cert,
    now,
    refreshFraction,
  });
  if (reason) return { kind: "issue", secretName, reason, hostnames, keyAlgorithm };
  const extra = view ? extraKeys(view) : [];
  if (extra.length > 0) return { kind: "strip", secretName, keys: extra };
  return { kind: "current", secretName };
}

/** The DNS names a Service's certificate carries. */
export function hostnamesFor(svc: k8s.V1Service): string[] {
  const name = svc.metadata!.name!;
  const namespace = svc.metadata!.namespace!;
  const names = servingHostnames(name, namespace, svc.spec?.clusterIP === "None");
  return wantsShortNames(svc) ? [...shortHostnames(name, namespace), ...names].sort() : names;
}

/** The Service already names the current CA and carries no error: nothing to write on it. */
export function serviceMarkedCurrent(svc: k8s.V1Service, material: CaMaterial): boolean {
  const a = svc.metadata?.annotations ?? {};
  return (
    a[annotations.signedBy] === material.name && !(annotations.error in a) && !(annotations.errorNum in a)
  );
}

async function reconcileOnce(
  deps: ServingCertDeps,
  namespace: string,
  name: string,
  opts: ReconcileOptions,
): Promise<ReconcileResult> {
  const { kube } = deps;
  const svc = await readOptional(`Service ${namespace}/${name}`, () =>
    kube.core.readNamespacedService({ namespace, name }),
  );
  if (!svc) return { outcome: "service-gone" };
  const secretName = requestedSecretName(svc);
  if (!secretName) return { outcome: "not-annotated" };
  if (failureCount(svc) >= MAX_FAILURES) return { outcome: "gave-up", secret: secretName };

  const material = await deps.ca.signingMaterial();
  const secret = await readOptional(`Secret ${namespace}/${secretName}`, () =>
    kube.core.readNamespacedSecret({ namespace, name: secretName }),
  );
  const verdict = await judge(svc, secret, material, deps.clock.now(), deps.refreshFraction);
  switch (verdict.kind) {
    case "not-annotated":
      return { outcome: "not-annotated" };
    case "gave-up":
      return { outcome: "gave-up", secret: secretName };
    case "foreign":
      if (svc.metadata?.annotations?.[annotations.error] !== verdict.message || opts.countRepeatedFailure) {
        await recordFailure(deps, svc, verdict.message);
      }
      return { outcome: "foreign-secret", secret: secretName, reason: verdict.message };
    case "issue": {
      const started = performance.now();
      await issue(deps, svc, secretName, secret, material, verdict);
      deps.metrics?.certificateIssued(verdict.reason, (performance.now() - started) / 1000);
      deps.log.info("issued serving certificate", {
        service: `${namespace}/${name}`,
        secret: secretName,
        reason: verdict.reason,
      });
      await markSigned(deps, svc, material);
      return { outcome: "issued", secret: secretName, reason: verdict.reason };
    }
    case "strip":
      await mergePatch(
        kube,
        { apiVersion: "v1", kind: "Secret", namespace, name: secretName },
        {
          metadata: { resourceVersion: secret!.metadata?.resourceVersion },
          data: Object.fromEntries(verdict.keys.map((k) => [k, null])),
        },
      );
      await markSigned(deps, svc, material);
      return { outcome: "stripped", secret: secretName };
    case "current":
      deps.metrics?.writeSkipped("Secret");
      await markSigned(deps, svc, material);
      return { outcome: "current", secret: secretName };
  }
}

async function issue(
  deps: ServingCertDeps,
  svc: k8s.V1Service,
  secretName: string,
  existing: k8s.V1Secret | undefined,
  material: CaMaterial,
  opts: { hostnames: string[]; keyAlgorithm: KeyAlgorithm },
): Promise<void> {
  const namespace = svc.metadata!.namespace!;
  const name = svc.metadata!.name!;
  const leaf = await signServingCertificate({
    signer: material.signer,
    hostnames: opts.hostnames,
    now: deps.clock.now(),
    validityDays: deps.validityDays,
    keyAlgorithm: opts.keyAlgorithm,
    keys:
      deps.keyPool && deps.keyPool.algorithm === opts.keyAlgorithm ? await deps.keyPool.take() : undefined,
  });
  const body: k8s.V1Secret = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: {
      name: secretName,
      namespace,
      labels: { ...(existing?.metadata?.labels ?? {}), ...MANAGED_BY_LABEL },
      annotations: {
        ...(existing?.metadata?.annotations ?? {}),
        [annotations.originName]: name,
        [annotations.originUid]: svc.metadata!.uid!,
        [annotations.expiry]: leaf.cert.notAfter.toISOString().replace(/\.\d{3}Z$/, "Z"),
      },
      ownerReferences: [{ apiVersion: "v1", kind: "Service", name, uid: svc.metadata!.uid! }],
      ...(existing ? { resourceVersion: existing.metadata!.resourceVersion } : {}),
    },
    type: "kubernetes.io/tls",
    data: { "tls.crt": b64(leaf.certPem + material.chainPem), "tls.key": b64(leaf.keyPem) },
  };
  if (existing) {
    // resourceVersion makes the replace conditional: a concurrent writer turns this into a 409, then a re-read.
    await write(`replace Secret ${namespace}/${secretName}`, () =>
      deps.kube.core.replaceNamespacedSecret({ namespace, name: secretName, body }),
    );
  } else {
    try {
      await deps.kube.core.createNamespacedSecret({ namespace, body });
    } catch (err) {
      if (isConflict(err))
        throw new FunctionError("conflict", `Secret ${namespace}/${secretName} appeared meanwhile`);
      throw err;
    }
  }
}

/** On success: signed-by names the CA, and the error annotations go away. Writes only if that changes anything. */
async function markSigned(deps: ServingCertDeps, svc: k8s.V1Service, material: CaMaterial): Promise<void> {
  if (serviceMarkedCurrent(svc, material)) return;
  // Conditional on what was read: when a replica or the scan marked it first, the 409 leads to a re-read that
  // finds nothing to write, instead of a second identical write.
  await mergePatch(deps.kube, serviceKey(svc), {
    metadata: {
      resourceVersion: svc.metadata?.resourceVersion,
      annotations: {
        [annotations.signedBy]: material.name,
        [annotations.error]: null,
        [annotations.errorNum]: null,
      },
    },
  });
}

async function recordFailure(deps: ServingCertDeps, svc: k8s.V1Service, message: string): Promise<void> {
  const count = failureCount(svc) + 1;
  await mergePatch(deps.kube, serviceKey(svc), {
    metadata: {
      resourceVersion: svc.metadata?.resourceVersion,
      annotations: { [annotations.error]: message, [annotations.errorNum]: String(count) },
    },
  });
  deps.log.warn("serving certificate not issued", {
    service: `${svc.metadata?.namespace}/${svc.metadata?.name}`,
    error: message,
    failures: count,
  });
  await recordEvent(
    deps.kube,
    deps.log,
    { ...serviceKey(svc), namespace: svc.metadata!.namespace!, uid: svc.metadata?.uid },
    {
      type: "Warning",
      reason: "ServingCertSecretConflict",
      message:
        count >= MAX_FAILURES
          ? `${message} Giving up after ${count} attempts; clear ${annotations.errorNum} to retry.`
          : message,
      component: COMPONENT,
      now: deps.clock.now(),
    },
  );
}

const serviceKey = (svc: k8s.V1Service) => ({
  apiVersion: "v1",
  kind: "Service",
  name: svc.metadata!.name!,
  namespace: svc.metadata!.namespace!,
});
