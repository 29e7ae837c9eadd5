// One CertificateSigningRequest of our signer, moved on by one step: auto-approved or denied (when enabled),
// then signed or failed. The CSR is always re-read: an event only says where to look.
import { retryOnConflict } from "../kube/conflicts.ts";
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "../kube/client.ts";
import { write } from "../kube/objects.ts";
import { csrPagesOf, readCsr, readObject, replaceCsrApproval, replaceCsrStatus } from "../kube/core.ts";
import { forEachPage } from "../kube/pages.ts";
import { mayDo } from "../kube/auth.ts";
import type { CaStore } from "../ca-store/store.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import type { IssuanceMetrics } from "../serving-cert/metrics.ts";
import { transient } from "../runtime/errors.ts";
import {
  csrLifetimeSeconds,
  judgeServingRequest,
  signServingRequest,
  type ServingRequest,
} from "../pki/csr.ts";
import { recordEvent } from "../kube/events.ts";
import { SIGNER_NAME } from "../names.ts";
import { capText } from "../runtime/logger.ts";
import { MAX_COMMON_NAME } from "../serving-cert/dns-names.ts";
import {
  csrCondition,
  csrState,
  refusedNames,
  serviceAccountOf,
  serviceClaimed,
  type CsrNameRule,
} from "./policy.ts";

/** Events about cluster-scoped objects live in `default`, as client-go's recorder puts them. */
const EVENT_NAMESPACE = "default";

export interface CsrSignerDeps {
  kube: Kube;
  ca: CaStore;
  clock: Clock;
  log: Logger;
  /** Who raises the Events (sign-csr). */
  component: string;
  autoApprove: boolean;
  /** The longest lifetime granted, and the lifetime of a CSR without spec.expirationSeconds. */
  maxSeconds: number;
  metrics: IssuanceMetrics;
  /** What a cluster admin allows besides a ServiceAccount's own Services (CSR_ALLOWED_NAMES). */
  allowedNames: readonly CsrNameRule[];
}

export interface CsrResult {
  outcome:
    | "gone"
    | "other-signer"
    | "already-signed"
    | "already-failed"
    | "already-denied"
    | "awaiting-approval"
    | "denied"
    | "failed"
    | "signed";
  reason?: string;
  message?: string;
  notAfter?: string;
}

type Csr = k8s.V1CertificateSigningRequest;

export async function reconcileCsr(deps: CsrSignerDeps, name: string): Promise<CsrResult> {
  // Writes are conditional on the resourceVersion read; whoever lost a race (another replica, or the event our own
  // approval caused) re-reads and usually finds the work done.
  return retryOnConflict(3, () => reconcileOnce(deps, name));
}

async function reconcileOnce(deps: CsrSignerDeps, name: string): Promise<CsrResult> {
  let csr = await readCsr(deps.kube, name);
  if (!csr) return { outcome: "gone" };
  if (csr.spec.signerName !== SIGNER_NAME) return { outcome: "other-signer" };
  const state = csrState(csr);
  if (state === "signed" || state === "failed" || state === "denied") return { outcome: `already-${state}` };
  if (state === "pending") {
    if (!deps.autoApprove) {
      await announce(deps, csr);
      return { outcome: "awaiting-approval" };
    }
    const decision = await autoApproval(deps, csr);
    if (decision.verdict === "manual") {
      await announce(deps, csr);
      return { outcome: "awaiting-approval", message: decision.message };
    }
    const type = decision.verdict === "approve" ? "Approved" : "Denied";
    csr = await write(`${type === "Approved" ? "approve" : "deny"} CertificateSigningRequest ${name}`, () =>
      replaceCsrApproval(
        deps.kube,
        name,
        withCondition(csr!, csrCondition(type, decision.reason, decision.message, deps.clock.now())),
      ),
    );
    deps.log.info(`auto-approval: ${type.toLowerCase()}`, { csr: name, reason: decision.reason });
    if (type === "Denied") return { outcome: "denied", reason: decision.reason, message: decision.message };
  }
  return sign(deps, csr);
}

type Judged = { ok: true; request: ServingRequest } | { ok: false; reason: string; message: string };

/**
 * The request as the signer judges it, approved or not: its form (shared/pki), then its names against the policy
 * (policy.ts refusedNames) and the CN's X.509 bound. A human's approval never widens this.
 */
async function judgeRequest(deps: CsrSignerDeps, csr: Csr): Promise<Judged> {
  const verdict = await judgeServingRequest(pemOf(csr), csr.spec.usages ?? []);
  if (!verdict.ok) return verdict;
  const { username, groups } = csr.spec;
  const refused = refusedNames(verdict.request.dnsNames, { username, groups }, deps.allowedNames);
  if (refused.length > 0)
    return {
      ok: false,
      reason: "NameNotAllowed",
      message: capText(
        `${username ?? "the requester"} may not claim ${refused.map((r) => `${r.name} (${r.why})`).join("; ")}`,
        1000,
      ),
    };
  const cn = verdict.request.commonName;
  if (cn.length > MAX_COMMON_NAME)
    return {
      ok: false,
      reason: "CommonNameTooLong",
      message: `the subject CN ${capText(cn, 80)} is ${cn.length} characters; X.509 allows at most ${MAX_COMMON_NAME}: ask with a shorter CN (one of the DNS names) or none`,
    };
  return verdict;
}

async function sign(deps: CsrSignerDeps, csr: Csr): Promise<CsrResult> {
  const started = performance.now();
  const name = csr.metadata!.name!;
  const verdict = await judgeRequest(deps, csr);
  const now = deps.clock.now();
  if (!verdict.ok) {
    await writeStatus(
      deps,
      csr,
      withCondition(csr, csrCondition("Failed", verdict.reason, verdict.message, now)),
    );
    deps.log.info("refused to sign", { csr: name, reason: verdict.reason, message: verdict.message });
    await recordEvent(deps.kube, deps.log, csrEventTarget(csr), {
      type: "Warning",
      reason: "CertificateRefused",
      message: `${verdict.reason}: ${verdict.message}`,
      component: deps.component,
      now,
    });
    return { outcome: "failed", reason: verdict.reason, message: verdict.message };
  }
  const material = await deps.ca.existingMaterial();
  if (!material)
    throw transient("the service CA does not exist yet (issue-serving-cert or rotate-ca creates it)");
  const cert = await signServingRequest({
    signer: material.signer,
    request: verdict.request,
    now,
    lifetimeSeconds: csrLifetimeSeconds(csr.spec.expirationSeconds, deps.maxSeconds),
  });
  // After a rotation the bridge (new CA cross-signed by the previous one) follows the leaf, as in serving Secrets.
  const pem = cert.pem + "\n" + material.chainPem;
  await writeStatus(deps, csr, {
    ...csr,
    status: { ...csr.status, certificate: Buffer.from(pem).toString("base64") },
  });
  deps.metrics.certificateIssued("csr", (performance.now() - started) / 1000);
  const notAfter = cert.notAfter.toISOString();
  deps.log.info("signed", { csr: name, names: verdict.request.dnsNames, notAfter, ca: material.name });
  await recordEvent(deps.kube, deps.log, csrEventTarget(csr), {
    type: "Normal",
    reason: "CertificateIssued",
    message: capText(`signed for ${verdict.request.dnsNames.join(", ")} until ${notAfter}`, 1000),
    component: deps.component,
    now,
  });
  return { outcome: "signed", notAfter };
}

const csrEventTarget = (csr: Csr) => ({
  apiVersion: "certificates.k8s.io/v1",
  kind: "CertificateSigningRequest",
  name: csr.metadata!.name!,
  namespace: EVENT_NAMESPACE,
  uid: csr.metadata?.uid,
});

/** CSRs this process has already described to approvers (by uid), so repeated events write no Event. */
const announced = new Set<string>();

/**
 * Tells an approver what a pending request asks for, and whether it would be signed, as an Event on the CSR
 * (`kubectl get csr` does not show the names): once per CSR and process.
 */
async function announce(deps: CsrSignerDeps, csr: Csr): Promise<void> {
  const uid = csr.metadata?.uid ?? csr.metadata!.name!;
  if (announced.has(uid)) return;
  const verdict = await judgeRequest(deps, csr);
  const names = verdict.ok ? verdict.request.dnsNames.join(", ") : undefined;
  await recordEvent(deps.kube, deps.log, csrEventTarget(csr), {
    type: verdict.ok ? "Normal" : "Warning",
    reason: "CertificateRequested",
    message: capText(
      verdict.ok
        ? `asks for DNS names ${names} (CN ${verdict.request.commonName}, ${verdict.request.key}); signed once approved`
        : `will not be signed even if approved: ${verdict.reason}: ${verdict.message}`,
      1000,
    ),
    component: deps.component,
    now: deps.clock.now(),
  });
  announced.add(uid);
  if (announced.size > 4096) announced.delete(announced.values().next().value!);
}

type Decision =
  { verdict: "approve" | "deny"; reason: string; message: string } | { verdict: "manual"; message: string };

/**
 * Approve only a ServiceAccount's request that proves possession of its key, asks for serving usages, and names
 * only existing Services of its own namespace that it may update; deny any other ServiceAccount request. Requests
 * from other users (people, nodes) are left to a human: denying them would stop a manual approval.
 */
async function autoApproval(deps: CsrSignerDeps, csr: Csr): Promise<Decision> {
  const { username, groups, uid, extra } = csr.spec;
  const requester = serviceAccountOf(username);
  if (!requester)
    return { verdict: "manual", message: `${username ?? "an unknown user"} is not a ServiceAccount` };
  const deny = (reason: string, message: string): Decision => ({
    verdict: "deny",
    reason,
    message: `auto-approval: ${message}`,
  });
  // The signer's own policy first: what it would refuse to sign is denied, not approved and then failed.
  const verdict = await judgeRequest(deps, csr);
  if (!verdict.ok) return deny(verdict.reason, verdict.message);
  const ns = requester.namespace;
  // Names of its own namespace's Services need the Service and the right to update it; names a cluster admin
  // allowed (CSR_ALLOWED_NAMES) need nothing more.
  const services = [...new Set(verdict.request.dnsNames.flatMap((n) => serviceClaimed(n, ns) ?? []))].sort();
  for (const svc of services) {
    const found = await readObject(deps.kube, "Service", ns, svc);
    if (!found) return deny("ServiceNotFound", `there is no Service ${ns}/${svc}`);
    const allowed = await mayDo(
      deps.kube,
      { user: username!, groups, uid, extra },
      { verb: "update", resource: "services", namespace: ns, name: svc },
      `review whether ${username} may update Service ${ns}/${svc}`,
    );
    if (!allowed) return deny("NotAuthorized", `${username} may not update Service ${ns}/${svc}`);
  }
  return {
    verdict: "approve",
    reason: "AutoApproved",
    message: `auto-approved: ${username} may update Service${services.length > 1 ? "s" : ""} ${services.map((s) => `${ns}/${s}`).join(", ")}, which the names denote`,
  };
}

export interface SweepResult {
  seen: number;
  outcomes: Record<string, number>;
  errors: number;
}

/** Every CSR of our signer that still needs a step, page by page: what lost or missed events left behind. */
export async function sweepCsrs(deps: CsrSignerDeps): Promise<SweepResult> {
  const result: SweepResult = { seen: 0, outcomes: {}, errors: 0 };
  const page = csrPagesOf(deps.kube, SIGNER_NAME, 500);
  await forEachPage(`the CertificateSigningRequests of ${SIGNER_NAME}`, page, async (items) => {
    for (const csr of items) {
      result.seen++;
      const state = csrState(csr);
      if (state !== "approved" && !(state === "pending" && deps.autoApprove)) continue;
      try {
        const { outcome } = await reconcileCsr(deps, csr.metadata!.name!);
        result.outcomes[outcome] = (result.outcomes[outcome] ?? 0) + 1;
      } catch (err) {
        result.errors++;
        deps.log.warn("sweep: a CSR could not be handled", {
          csr: csr.metadata?.name,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  });
  return result;
}

const pemOf = (csr: Csr) => Buffer.from(csr.spec.request, "base64").toString("utf8");

const withCondition = (csr: Csr, condition: k8s.V1CertificateSigningRequestCondition): Csr => ({
  ...csr,
  status: { ...csr.status, conditions: [...(csr.status?.conditions ?? []), condition] },
});

function writeStatus(deps: CsrSignerDeps, csr: Csr, body: Csr): Promise<Csr> {
  const name = csr.metadata!.name!;
  return write(`update the status of CertificateSigningRequest ${name}`, () =>
    replaceCsrStatus(deps.kube, name, body),
  );
}
