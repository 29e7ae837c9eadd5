// One rotation path for every trigger (the daily ping, an admin, the scan's safety net): write, publish, announce.
import type { IncomingHttpHeaders } from "node:http";
import type { Kube } from "../kube/client.ts";
import { authorizeBearer } from "../kube/auth.ts";
import type { Clock } from "../runtime/clock.ts";
import type { Logger } from "../runtime/logger.ts";
import { rotationDue } from "../pki/index.ts";
import type { CaStore, CaMaterial, RotationMode } from "./store.ts";
import { announceRotation } from "./observe.ts";

export interface RotationDeps {
  kube: Kube;
  ca: CaStore;
  clock: Clock;
  log: Logger;
  /** Who announces the rotation (the Event's component). */
  component: string;
}

const describeCa = (m: CaMaterial) => ({ ca: m.name, notAfter: m.signer.cert.notAfter.toISOString() });

export async function rotateAndAnnounce(deps: RotationDeps, reason: string, mode: RotationMode) {
  const now = deps.clock.now();
  const before = await deps.ca.signingMaterial();
  const rotated = await deps.ca.rotate(reason, mode);
  if (!rotated) {
    // Another writer changed the CA Secret between our read and write; its result stands and nothing is retried,
    // so two racing rotations (or a redelivered request) still make one new CA.
    const current = await deps.ca.signingMaterial();
    deps.log.info("the CA changed concurrently; not rotating again", { ca: current.name });
    return { outcome: "rotated-concurrently", mode, old: describeCa(before), new: describeCa(current) };
  }
  // The bundle change is the fan-out: expiry-scan re-issues every serving certificate, the injectors re-inject.
  await deps.ca.publishBundle(rotated.material);
  await announceRotation({ ...deps, where: deps.ca.where, now }, rotated, reason, mode);
  return {
    outcome: "rotated",
    mode,
    old: describeCa(before),
    new: describeCa(rotated.material),
    previousTrustedUntil: mode === "overlap" ? rotated.previous.notAfter.toISOString() : null,
    fanOut:
      "the published bundle changed: expiry-scan re-issues every serving certificate, the injectors re-inject every annotated object",
  };
}

/**
 * Rotates (overlap) if `material`'s CA has fewer than `minRemainingDays` left: the daily ping, and the scan's safety
 * net for a missed one. Returns undefined when it is not due.
 */
export async function rotateIfDue(
  deps: RotationDeps,
  material: CaMaterial,
  minRemainingDays: number,
  trigger: string,
): Promise<Awaited<ReturnType<typeof rotateAndAnnounce>> | undefined> {
  if (!rotationDue(material.signer.cert, deps.clock.now(), minRemainingDays)) return undefined;
  return rotateAndAnnounce(deps, `${trigger}: fewer than ${minRemainingDays} days left`, "overlap");
}

/** Whoever may write the CA Secret may rotate it (and see its status): the API server decides. Returns the user. */
export function mayRotate(
  deps: { kube: Kube; ca: CaStore },
  headers: IncomingHttpHeaders,
  log: Logger,
): Promise<string> {
  const { namespace, secretName: name } = deps.ca.where;
  return authorizeBearer(deps.kube, headers, { verb: "update", resource: "secrets", namespace, name }, log);
}

export function caStatus(m: CaMaterial) {
  return {
    current: describeCa(m),
    trusted: m.bundle.map((c) => ({
      subject: c.subject,
      notBefore: c.notBefore.toISOString(),
      notAfter: c.notAfter.toISOString(),
    })),
    bundleCertificates: m.bundle.length,
    servedIntermediates: m.chainPem ? m.chainPem.split("-----BEGIN CERTIFICATE-----").length - 1 : 0,
  };
}
