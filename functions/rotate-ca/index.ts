// rotate-ca: rotates the service CA when it nears expiry (daily ping), or when an authorized admin asks.
import { z } from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { pingEvent } from "../../shared/events/knative.ts";
import { CaStore } from "../../shared/ca-store/store.ts";
import { caLocationFrom, caStoreConfigShape, rotationConfigShape } from "../../shared/ca-store/layout.ts";
import { caExpiryGauge } from "../../shared/ca-store/observe.ts";
import { caStatus, rotateAndAnnounce } from "../../shared/ca-store/rotate.ts";
import { rotationDue } from "../../shared/pki/index.ts";
import { authorizeBearer } from "../../shared/kube/auth.ts";

const COMPONENT = "service-ca-functions/rotate-ca";

export const rotateRequest = z
  .object({
    reason: z.string().trim().min(1).max(256),
    mode: z.enum(["overlap", "replace"]).default("overlap"),
    dryRun: z.boolean().default(false),
  })
  .strict();

export default defineFunction({
  name: "rotate-ca",
  // Who may send it events (infra/base/sources/).
  sources: [{ kind: "PingSource", name: "rotate-ca-daily" }],
  description:
    "rotates the service CA: automatically on a ping when fewer than CA_ROTATE_MIN_REMAINING_DAYS remain (overlap: the " +
    "old CA stays trusted until it expires), or on POST /rotate by a caller allowed to update the CA Secret; " +
    "GET /status reports the CA(s)",
  config: {
    ...caStoreConfigShape,
    ...rotationConfigShape,
  },
  event: pingEvent,
  init({ config, kube, clock, log, metrics }) {
    const where = caLocationFrom(config);
    return {
      kube: kube(),
      where,
      store: new CaStore(kube(), where, clock, log, caExpiryGauge(metrics)),
      minRemainingDays: config.CA_ROTATE_MIN_REMAINING_DAYS,
    };
  },
  async handle(_event, { state, log, clock }) {
    const material = await state.store.signingMaterial();
    if (!rotationDue(material.signer.cert, clock.now(), state.minRemainingDays)) {
      return { outcome: "not-due", ca: material.name, notAfter: material.signer.cert.notAfter.toISOString() };
    }
    const deps = { ...state, log, component: COMPONENT, now: clock.now() };
    return rotateAndAnnounce(deps, `automatic: fewer than ${state.minRemainingDays} days left`, "overlap");
  },
  routes: [
    {
      method: "POST",
      path: "/rotate",
      body: rotateRequest,
      async handle(body, { state, log, clock, headers }) {
        const user = await mayRotate(state, headers, log);
        if (body.dryRun) {
          const m = await state.store.signingMaterial();
          return { outcome: "dry-run", mode: body.mode, wouldRotate: caStatus(m).current, user };
        }
        const deps = { ...state, log: log.child({ user }), component: COMPONENT, now: clock.now() };
        return rotateAndAnnounce(deps, `forced by ${user}: ${body.reason}`, body.mode);
      },
    },
    {
      method: "GET",
      path: "/status",
      body: z.unknown(),
      async handle(_body, { state, headers, log }) {
        await mayRotate(state, headers, log);
        return caStatus(await state.store.signingMaterial());
      },
    },
  ],
});

/** Whoever may write the CA Secret may rotate it (and see its status): the API server decides. */
function mayRotate(
  state: { kube: Parameters<typeof authorizeBearer>[0]; where: { namespace: string; secretName: string } },
  headers: Parameters<typeof authorizeBearer>[1],
  log: Parameters<typeof authorizeBearer>[3],
) {
  return authorizeBearer(
    state.kube,
    headers,
    { verb: "update", resource: "secrets", namespace: state.where.namespace, name: state.where.secretName },
    log,
  );
}
