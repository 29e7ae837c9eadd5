// Brings one Service's serving-certificate Secret to the state it should have, writing only what differs.
import { retryOnConflict } from "../kube/conflicts.ts";
import type * as k8s from "@kubernetes/client-node";
import { servingHostnames, shortHostnames, signServingCertificate, type KeyAlgorithm } from "../pki/index.ts";
import { isConflict, type Kube } from "../kube/client.ts";
import { mergePatch, write } from "../kube/objects.ts";
import { createObject, readObject, replaceSecret } from "../kube/core.ts";
import { recordEvent } from "../kube/events.ts";
import { FunctionError } from "../runtime/errors.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import type { IssuanceMetrics } from "./metrics.ts";
import type { KeyPool } from "./key-pool.ts";
import type { SettledVersions } from "./settled-versions.ts";
import type { CaMaterial } from "../ca-store/store.ts";
import type { SigningSource } from "../ca-store/signing-cache.ts";
import { annotations, dataKeys, MANAGED_BY_LABEL } from "../names.ts";
import {
  failureCount,
  MAX_FAILURES,
  originatingUid,
  requestedSecretName,
  wantsShortNames,
} from "./annotations.ts";
import { extraKeys, keyWorthKeeping, NOT_CURRENT_CA, reissueReason, type SecretView } from "./decide.ts";
import { isDnsLabel, MAX_COMMON_NAME, reservedName, secretNameProblem } from "./dns-names.ts";
import {
  alreadyRecorded,
  causeOf,
  FAILURE_ANNOTATIONS,
  givenUp,
  nextRecheck,
  recheckDue,
} from "./failures.ts";

export interface ServingCertDeps {
  kube: Kube;
  ca: SigningSource;
  clock: Clock;
  log: Logger;
  /** Who raises this reconcile's Events (the function doing it: issue-serving-cert, or expiry-scan's scan). */
  component: string;
  validityDays: number;
  refreshFraction: number;
  /** Pre-generated RSA keys; without one, each certificate generates its key while the caller waits. */
  keyPool?: KeyPool;
  metrics?: IssuanceMetrics;
  /** Whether a bare `<svc>` may be among the short names (SERVING_CERT_SINGLE_LABEL_NAMES); default true. */
  singleLabelNames?: boolean;
  /** A re-issue for a rotated CA keeps the key while that CA is trusted (SERVING_CERT_KEEP_KEY_ON_ROTATION). */
  keepKeyOnRotation?: boolean;
  /** Versions this process settled: an event echoing its own write costs one read at most (none with its version). */
  settled?: SettledVersions;
}

export interface ReconcileOptions {
  /**
   * Look again at a Service given up on (the scan, when its re-check is due): if what stood in the way is gone
   * it gets its certificate; if not, the next re-check is scheduled further out.
   */
  recheckGivenUp?: boolean;
  /**
   * The event is about the Service itself: a Service still at a version this process settled needs nothing
   * (what its Secret became since is that Secret's own event, which judges it in full).
   */
  serviceEvent?: boolean;
  /**
   * A Service this system never marked (no signed-by, no error) most likely has no Secret yet: its create is
   * tried without reading first, and a 409 means a re-read (set by reconcileService on its first attempt only).
   */
  mayAssumeNoSecret?: boolean;
}

export type Outcome =
  | "service-gone"
  | "not-annotated"
  | "gave-up"
  | "foreign-secret"
  | "invalid-secret-name"
  | "name-too-long"
  | "issued"
  | "stripped"
  | "current";

export interface ReconcileResult {
  outcome: Outcome;
  secret?: string;
  reason?: string;
}

/** The reason given when an event named an object still at a version this process settled. */
export const SETTLED_REASON = "unchanged since this process settled it";

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
  // A lost create/update race means another replica wrote first (or a Secret was there after all): re-read,
  // and judge again.
  let attempt = 0;
  return retryOnConflict(
    4,
    () => reconcileOnce(deps, namespace, name, { ...opts, mayAssumeNoSecret: attempt++ === 0 }),
    (attempt) => deps.log.debug("write conflict; re-reading", { service: `${namespace}/${name}`, attempt }),
  );
}

/** Why a Service gets no certificate: each is counted once (by its cause), said on the Service and as an Event. */
export interface Refusal {
  kind: "refused";
  secretName: string;
  outcome: "foreign-secret" | "invalid-secret-name" | "name-too-long";
  /** the Event's reason */
  reason: string;
  message: string;
  cause: string;
}

export interface JudgeOptions {
  now: Date;
  refreshFraction: number;
  singleLabelNames?: boolean;
  keepKeyOnRotation?: boolean;
  /** judge a Service given up on as if it were not (a due re-check) */
  recheckGivenUp?: boolean;
}

export type Verdict =
  | { kind: "not-annotated" }
  | { kind: "gave-up"; secretName: string }
  | Refusal
  | {
      kind: "issue";
      secretName: string;
      reason: string;
      hostnames: string[];
      keyAlgorithm: KeyAlgorithm;
      /** the Secret's key, re-signed under the current CA (a routine rotation) */
      keepKey: boolean;
    }
  | { kind: "strip"; secretName: string; keys: string[] }
  | { kind: "current"; secretName: string };

/**
 * What stops a Service from getting a certificate before any Secret is read: a Secret name the API server would
 * refuse (or that would change the request path, like `a/b`), or names too long for the certificate's CN.
 */
export function refusalBeforeRead(
  svc: k8s.V1Service,
  opts: { singleLabelNames?: boolean } = {},
): Refusal | undefined {
  const secretName = requestedSecretName(svc);
  if (!secretName) return undefined;
  const problem = secretNameProblem(secretName);
  if (problem)
    return {
      kind: "refused",
      secretName,
      outcome: "invalid-secret-name",
      reason: "InvalidServingCertSecretName",
      message: `The serving-cert Secret name ${problem}. Nothing is issued until the annotation names a valid Secret.`,
      cause: causeOf("invalid-secret-name", secretName),
    };
  const hostnames = hostnamesFor(svc, opts);
  // The CN is the first of the sorted names (shared/pki); X.509 caps a CN at 64 characters, as cert-manager does.
  const cn = [...hostnames].sort()[0];
  if (cn === undefined || cn.length > MAX_COMMON_NAME)
    return {
      kind: "refused",
      secretName,
      outcome: "name-too-long",
      reason: "ServingCertNameTooLong",
      message:
        cn === undefined
          ? "None of this Service's names may be certified."
          : `The certificate's CN would be ${cn} (${cn.length} characters; X.509 allows at most ${MAX_COMMON_NAME}). Nothing is issued: shorten the Service's or the namespace's name.`,
      cause: causeOf("name-too-long", cn ?? ""),
    };
  return undefined;
}

/** What a Service's Secret needs, judged from objects already read (by a GET or from a list page). */
export async function judge(
  svc: k8s.V1Service,
  secret: k8s.V1Secret | undefined,
  material: CaMaterial,
  opts: JudgeOptions,
): Promise<Verdict> {
  const { now, refreshFraction } = opts;
  const namespace = svc.metadata!.namespace!;
  const secretName = requestedSecretName(svc);
  if (!secretName) return { kind: "not-annotated" };
  if (givenUp(svc) && !opts.recheckGivenUp) return { kind: "gave-up", secretName };
  const early = refusalBeforeRead(svc, opts);
  if (early) return early;
  const uid = svc.metadata?.uid ?? "";
  if (secret && originatingUid(secret) !== uid) {
    const message = `Secret ${namespace}/${secretName} exists and was not created for this Service (uid ${uid}); it is left untouched. Delete it or choose another name.`;
    return {
      kind: "refused",
      secretName,
      outcome: "foreign-secret",
      reason: "ServingCertSecretConflict",
      message,
      // The same foreign Secret is one cause however often it is seen; a new one (deleted, re-created) is another.
      cause: causeOf("foreign-secret", secret.metadata?.uid ?? ""),
    };
  }
  const hostnames = hostnamesFor(svc, opts);
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
  if (reason) {
    const keepKey =
      reason === NOT_CURRENT_CA &&
      opts.keepKeyOnRotation === true &&
      view !== undefined &&
      keyWorthKeeping(view, { keyAlgorithm, trusted: material.bundle });
    return { kind: "issue", secretName, reason, hostnames, keyAlgorithm, keepKey };
  }
  const extra = view ? extraKeys(view) : [];
  if (extra.length > 0) return { kind: "strip", secretName, keys: extra };
  return { kind: "current", secretName };
}

/**
 * The DNS names a Service's certificate carries. Never `localhost`, `kubernetes.default*` or a name that is not
 * made of DNS labels; the bare `<svc>` only while `singleLabelNames` (a single label resolves in every namespace's
 * search path, so it is not tied to this namespace).
 */
export function hostnamesFor(svc: k8s.V1Service, opts: { singleLabelNames?: boolean } = {}): string[] {
  const name = svc.metadata!.name!;
  const namespace = svc.metadata!.namespace!;
  const names = servingHostnames(name, namespace, svc.spec?.clusterIP === "None");
  const short = wantsShortNames(svc)
    ? shortHostnames(name, namespace).filter((n) => opts.singleLabelNames !== false || n.includes("."))
    : [];
  return [...short, ...names]
    .filter((n) => n.replace(/^\*\./, "").split(".").every(isDnsLabel) && !reservedName(n))
    .sort();
}

/** The Service already names the current CA and carries no failure: nothing to write on it. */
export function serviceMarkedCurrent(svc: k8s.V1Service, material: CaMaterial): boolean {
  const a = svc.metadata?.annotations ?? {};
  return a[annotations.signedBy] === material.name && FAILURE_ANNOTATIONS.every((k) => !(k in a));
}

function meetsAnotherCa(svc: k8s.V1Service, verdict: Verdict, material: CaMaterial): boolean {
  const signedBy = svc.metadata?.annotations?.[annotations.signedBy];
  if (signedBy !== undefined && signedBy !== material.name) return true;
  return verdict.kind === "issue" && verdict.reason === NOT_CURRENT_CA;
}

async function reconcileOnce(
  deps: ServingCertDeps,
  namespace: string,
  name: string,
  opts: ReconcileOptions,
): Promise<ReconcileResult> {
  const { kube } = deps;
  const svc = await readObject(kube, "Service", namespace, name);
  if (!svc) return { outcome: "service-gone" };
  const secretName = requestedSecretName(svc);
  if (!secretName) return { outcome: "not-annotated" };
  if (
    opts.serviceEvent &&
    deps.settled?.isSettled("Service", namespace, name, svc.metadata?.resourceVersion)
  ) {
    deps.metrics?.writeSkipped("Secret");
    return { outcome: "current", secret: secretName, reason: SETTLED_REASON };
  }
  const recheck = givenUp(svc) && opts.recheckGivenUp === true && recheckDue(svc, deps.clock.now());
  if (givenUp(svc) && !recheck) return { outcome: "gave-up", secret: secretName };
  const judging = {
    now: deps.clock.now(),
    refreshFraction: deps.refreshFraction,
    singleLabelNames: deps.singleLabelNames,
    keepKeyOnRotation: deps.keepKeyOnRotation,
    recheckGivenUp: recheck,
  };
  // Before any request path is built from the name.
  const early = refusalBeforeRead(svc, judging);
  if (early) return refuse(deps, svc, early, recheck);

  let material = await deps.ca.signingMaterial();
  const neverMarked = ![annotations.signedBy, ...FAILURE_ANNOTATIONS].some(
    (k) => k in (svc.metadata?.annotations ?? {}),
  );
  const secret =
    opts.mayAssumeNoSecret && neverMarked
      ? undefined
      : await readObject(kube, "Secret", namespace, secretName);
  let verdict = await judge(svc, secret, material, judging);
  // Another CA than the copy's, on the Service or its certificate: the copy may be what is stale (a rotation whose
  // news has not come yet), and re-issuing from it would undo the fan-out. The CA Secret decides.
  if (deps.ca.currentMaterial && meetsAnotherCa(svc, verdict, material)) {
    material = await deps.ca.currentMaterial();
    verdict = await judge(svc, secret, material, judging);
  }
  switch (verdict.kind) {
    case "not-annotated":
      return { outcome: "not-annotated" };
    case "gave-up":
      return { outcome: "gave-up", secret: secretName };
    case "refused":
      return refuse(deps, svc, verdict, recheck);
    case "issue": {
      const started = performance.now();
      await issue(deps, svc, secretName, secret, material, verdict);
      deps.ca.issued?.(material, { namespace, service: name });
      deps.metrics?.certificateIssued(verdict.reason, (performance.now() - started) / 1000);
      deps.log.info("issued serving certificate", {
        service: `${namespace}/${name}`,
        secret: secretName,
        reason: verdict.reason,
      });
      await markSigned(deps, svc, material);
      return { outcome: "issued", secret: secretName, reason: verdict.reason };
    }
    case "strip": {
      const stripped = await mergePatch<k8s.V1Secret>(
        kube,
        { apiVersion: "v1", kind: "Secret", namespace, name: secretName },
        {
          metadata: { resourceVersion: secret!.metadata?.resourceVersion },
          data: Object.fromEntries(verdict.keys.map((k) => [k, null])),
        },
      );
      deps.settled?.settle("Secret", namespace, secretName, stripped.metadata?.resourceVersion);
      await markSigned(deps, svc, material);
      return { outcome: "stripped", secret: secretName };
    }
    case "current":
      deps.metrics?.writeSkipped("Secret");
      deps.settled?.settle("Secret", namespace, secretName, secret?.metadata?.resourceVersion);
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
  opts: { hostnames: string[]; keyAlgorithm: KeyAlgorithm; keepKey: boolean },
): Promise<void> {
  const namespace = svc.metadata!.namespace!;
  const name = svc.metadata!.name!;
  const leaf = await signServingCertificate({
    signer: material.signer,
    hostnames: opts.hostnames,
    now: deps.clock.now(),
    validityDays: deps.validityDays,
    keyAlgorithm: opts.keyAlgorithm,
    existingKeyPem: opts.keepKey ? decodeData(existing?.data)[dataKeys.tlsKey] : undefined,
    keys:
      !opts.keepKey && deps.keyPool && deps.keyPool.algorithm === opts.keyAlgorithm
        ? await deps.keyPool.take(namespace)
        : undefined,
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
        [annotations.expiry]: leaf.notAfter.toISOString().replace(/\.\d{3}Z$/, "Z"),
      },
      ownerReferences: [{ apiVersion: "v1", kind: "Service", name, uid: svc.metadata!.uid! }],
      ...(existing ? { resourceVersion: existing.metadata!.resourceVersion } : {}),
    },
    type: "kubernetes.io/tls",
    data: {
      [dataKeys.tlsCert]: b64(leaf.certPem + material.chainPem),
      [dataKeys.tlsKey]: b64(leaf.keyPem),
    },
  };
  let written: k8s.V1Secret;
  if (existing) {
    // resourceVersion makes the replace conditional: a concurrent writer turns this into a 409, then a re-read.
    written = await write(`replace Secret ${namespace}/${secretName}`, () =>
      replaceSecret(deps.kube, namespace, secretName, body),
    );
  } else {
    // Expected before the create is sent: its watch event may come back before the response does. A create
    // that fails forgets it (a 409 then re-reads and judges whoever's Secret is there).
    deps.settled?.created(namespace, secretName, deps.clock.now().getTime());
    try {
      written = await createObject(deps.kube, "Secret", namespace, body);
    } catch (err) {
      deps.settled?.forget("Secret", namespace, secretName);
      if (isConflict(err))
        throw new FunctionError("conflict", `Secret ${namespace}/${secretName} appeared meanwhile`);
      throw err;
    }
  }
  deps.settled?.settle("Secret", namespace, secretName, written.metadata?.resourceVersion);
}

/** On success: signed-by names the CA, and the error annotations go away. Writes only if that changes anything. */
async function markSigned(deps: ServingCertDeps, svc: k8s.V1Service, material: CaMaterial): Promise<void> {
  const settle = (version: string | undefined) =>
    deps.settled?.settle("Service", svc.metadata!.namespace!, svc.metadata!.name!, version);
  if (serviceMarkedCurrent(svc, material)) return settle(svc.metadata?.resourceVersion);
  // Conditional on what was read: when a replica or the scan marked it first, the 409 leads to a re-read that
  // finds nothing to write, instead of a second identical write.
  const marked = await mergePatch<k8s.V1Service>(deps.kube, serviceKey(svc), {
    metadata: {
      resourceVersion: svc.metadata?.resourceVersion,
      annotations: {
        [annotations.signedBy]: material.name,
        ...Object.fromEntries(FAILURE_ANNOTATIONS.map((k) => [k, null])),
      },
    },
  });
  settle(marked.metadata?.resourceVersion);
}

/**
 * A refusal, said once per cause: a cause the Service already records (another event, another scan, a forged
 * ping) writes nothing and counts nothing, so no sender can spend a Service's budget. A due re-check of a Service
 * given up on that finds the same cause only moves the next re-check further out.
 */
async function refuse(
  deps: ServingCertDeps,
  svc: k8s.V1Service,
  refusal: Refusal,
  recheck: boolean,
): Promise<ReconcileResult> {
  const result = { outcome: refusal.outcome, secret: refusal.secretName, reason: refusal.message };
  const now = deps.clock.now();
  if (alreadyRecorded(svc, refusal.cause, refusal.message)) {
    if (recheck)
      await mergePatch(deps.kube, serviceKey(svc), {
        metadata: { resourceVersion: svc.metadata?.resourceVersion, annotations: nextRecheck(svc, now) },
      });
    return recheck ? { ...result, outcome: "gave-up" } : result;
  }
  const count = failureCount(svc) + 1;
  await mergePatch(deps.kube, serviceKey(svc), {
    metadata: {
      resourceVersion: svc.metadata?.resourceVersion,
      annotations: {
        [annotations.error]: refusal.message,
        [annotations.errorNum]: String(count),
        [annotations.failureCause]: refusal.cause,
        ...(count >= MAX_FAILURES ? nextRecheck(svc, now) : {}),
      },
    },
  });
  deps.log.warn("serving certificate not issued", {
    service: `${svc.metadata?.namespace}/${svc.metadata?.name}`,
    reason: refusal.reason,
    error: refusal.message,
    failures: count,
  });
  await recordEvent(
    deps.kube,
    deps.log,
    { ...serviceKey(svc), namespace: svc.metadata!.namespace!, uid: svc.metadata?.uid },
    {
      type: "Warning",
      reason: refusal.reason,
      message:
        count >= MAX_FAILURES
          ? `${refusal.message} Given up after ${count} different causes: the scan looks again with backoff (from 1 h, doubling, up to 24 h), or clear ${annotations.errorNum} to retry now.`
          : refusal.message,
      component: deps.component,
      now,
    },
  );
  return result;
}

const serviceKey = (svc: k8s.V1Service) => ({
  apiVersion: "v1",
  kind: "Service",
  name: svc.metadata!.name!,
  namespace: svc.metadata!.namespace!,
});
