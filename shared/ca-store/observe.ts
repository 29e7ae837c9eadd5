// What a rotation tells the world: an Event on the CA Secret and a log line (the gauges follow the store's reads).
import type { X509Certificate } from "../pki/x509.ts";
import type { Kube } from "../kube/client.ts";
import { recordEvent } from "../kube/events.ts";
import type { Logger } from "../runtime/logger.ts";
import type { CaMaterial } from "./store.ts";
import type { CaLocation } from "./layout.ts";

const rfc3339 = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");

export async function announceRotation(
  deps: { kube: Kube; log: Logger; where: CaLocation; component: string; now: Date },
  rotated: { material: CaMaterial; previous: X509Certificate },
  reason: string,
  mode: "overlap" | "replace" = "overlap",
): Promise<void> {
  const until = mode === "overlap" ? rfc3339(rotated.previous.notAfter) : rfc3339(deps.now);
  deps.log.info("rotated the service CA", {
    ca: rotated.material.name,
    notAfter: rfc3339(rotated.material.signer.cert.notAfter),
    previousTrustedUntil: until,
    reason,
  });
  await recordEvent(
    deps.kube,
    deps.log,
    {
      apiVersion: "v1",
      kind: "Secret",
      namespace: deps.where.namespace,
      name: deps.where.secretName,
      uid: rotated.material.secretUid,
    },
    {
      type: "Normal",
      reason: "ServiceCARotated",
      message:
        mode === "overlap"
          ? `rotated to ${rotated.material.name} (${reason}); previous CA trusted until ${until}`
          : `replaced the CA with ${rotated.material.name} (${reason}); previous CA no longer trusted`,
      component: deps.component,
      now: deps.now,
    },
  );
}
