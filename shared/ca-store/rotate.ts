// One rotation path for every trigger (the daily ping, an admin, the scan's safety net): write, publish, announce.
import type { Kube } from "../kube/client.ts";
import type { Logger } from "../runtime/logger.ts";
import type { CaStore, CaMaterial, RotationMode } from "./store.ts";
import type { CaLocation } from "./layout.ts";
import { announceRotation } from "./observe.ts";

export interface RotationDeps {
  kube: Kube;
  where: CaLocation;
  store: CaStore;
  log: Logger;
  component: string;
  now: Date;
}

const describeCa = (m: CaMaterial) => ({ ca: m.name, notAfter: m.signer.cert.notAfter.toISOString() });

export async function rotateAndAnnounce(deps: RotationDeps, reason: string, mode: RotationMode) {
  const before = await deps.store.signingMaterial();
  const rotated = await deps.store.rotate(reason, mode);
  if (!rotated) {
    // Another writer changed the CA Secret between our read and write; its result stands and nothing is retried,
    // so two racing rotations (or a redelivered request) still make one new CA.
    const current = await deps.store.signingMaterial();
    deps.log.info("the CA changed concurrently; not rotating again", { ca: current.name });
    return { outcome: "rotated-concurrently", mode, old: describeCa(before), new: describeCa(current) };
  }
  // The bundle change is the fan-out: expiry-scan re-issues every serving certificate, the injectors re-inject.
  await deps.store.publishBundle(rotated.material);
  await announceRotation(deps, rotated, reason, mode);
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
