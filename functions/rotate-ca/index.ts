// rotate-ca: rotates the service CA when it nears expiry (daily ping), or when an authorized admin asks.
import { z } from "zod";
import { defineFunction } from "../../shared/runtime/define.ts";
import { pingEvent } from "../../shared/events/knative.ts";
import { CaStore } from "../../shared/ca-store/store.ts";
import { caLocationFrom, caStoreConfigShape, type CaLocation } from "../../shared/ca-store/layout.ts";
import type { Kube } from "../../shared/kube/client.ts";
import { announceRotation, caExpiryGauge } from "../../shared/ca-store/observe.ts";
import { rotationDue } from "../../shared/pki/index.ts";
import { authorizeBearer } from "../../shared/kube/auth.ts";
import type { Logger } from "../../shared/runtime/logger.ts";

const COMPONENT = "service-ca-functions/rotate-ca";

export default defineFunction({
  name: "rotate-ca",
  description:
    "rotates the service CA with an overlap (old CA trusted until it expires): automatically on a ping when " +
    "less than CA_ROTATE_MIN_REMAINING_DAYS remain, or on POST /rotate by a caller allowed to update the CA Secret",
  config: {
    ...caStoreConfigShape,
    CA_ROTATE_MIN_REMAINING_DAYS: z.coerce
      .number()
      .int()
      .min(1)
      .max(789)
      .default(395)
      .describe("rotate when fewer days than this remain on the CA"),
  },
  event: pingEvent,
  init({ config, kube, clock, log, metrics }) {
    const where = caLocationFrom(config);
    return {
      kube: kube(),
      where,
      store: new CaStore(kube(), where, clock, log),
      minRemainingDays: config.CA_ROTATE_MIN_REMAINING_DAYS,
      setExpiry: caExpiryGauge(metrics),
    };
  },
  async handle(_event, { state, log, clock }) {
    const material = await state.store.signingMaterial();
    state.setExpiry(material);
    if (!rotationDue(material.signer.cert, clock.now(), state.minRemainingDays)) {
      return { outcome: "not-due", ca: material.name, notAfter: material.signer.cert.notAfter.toISOString() };
    }
    return rotate(state, log, clock.now(), `automatic: fewer than ${state.minRemainingDays} days left`);
  },
  routes: [
    {
      method: "POST",
      path: "/rotate",
      body: z.object({ reason: z.string().trim().min(1).max(256) }).strict(),
      async handle(body, { state, log, clock, headers }) {
        const user = await authorizeBearer(state.kube, headers, {
          verb: "update",
          resource: "secrets",
          namespace: state.where.namespace,
          name: state.where.secretName,
        });
        return rotate(state, log.child({ user }), clock.now(), `forced by ${user}: ${body.reason}`);
      },
    },
  ],
});

interface RotateState {
  kube: Kube;
  where: CaLocation;
  store: CaStore;
  setExpiry: ReturnType<typeof caExpiryGauge>;
}

async function rotate(state: RotateState, log: Logger, now: Date, reason: string) {
  const rotated = await state.store.rotate(reason);
  if (!rotated) {
    // Another writer changed the CA Secret between our read and write; its result stands and nothing is retried,
    // so two racing rotations (or a redelivered request) still make one new CA.
    const current = await state.store.signingMaterial();
    log.info("the CA changed concurrently; not rotating again", { ca: current.name });
    return { outcome: "rotated-concurrently", ca: current.name };
  }
  state.setExpiry(rotated.material);
  await state.store.publishBundle(rotated.material);
  await announceRotation(
    { kube: state.kube, log, where: state.where, component: COMPONENT, now },
    rotated,
    reason,
  );
  return {
    outcome: "rotated",
    ca: rotated.material.name,
    previousTrustedUntil: rotated.previous.notAfter.toISOString(),
  };
}
