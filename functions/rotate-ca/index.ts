// rotate-ca: rotates the service CA when it nears expiry (daily ping), or when an authorized admin asks.
import * as z from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { pingEvent } from "../../shared/events/knative.ts";
import { openCaStore } from "../../shared/ca-store/store.ts";
import { caStoreConfigShape, rotationConfigShape } from "../../shared/ca-store/layout.ts";
import { caStatus, mayRotate, rotateAndAnnounce, rotateIfDue } from "../../shared/ca-store/rotate.ts";
import { eventComponent } from "../../shared/names.ts";

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
  init(ctx) {
    return {
      kube: ctx.kube(),
      ca: openCaStore(ctx),
      clock: ctx.clock,
      component: eventComponent("rotate-ca"),
      minRemainingDays: ctx.config.CA_ROTATE_MIN_REMAINING_DAYS,
    };
  },
  async handle(_event, { state, log }) {
    const material = await state.ca.signingMaterial();
    const rotated = await rotateIfDue({ ...state, log }, material, state.minRemainingDays, "automatic");
    return (
      rotated ?? {
        outcome: "not-due",
        ca: material.name,
        notAfter: material.signer.cert.notAfter.toISOString(),
      }
    );
  },
  routes: [
    {
      method: "POST",
      path: "/rotate",
      body: rotateRequest,
      async handle(body, { state, log, headers }) {
        const user = await mayRotate(state, headers, log);
        if (body.dryRun) {
          const m = await state.ca.signingMaterial();
          return { outcome: "dry-run", mode: body.mode, wouldRotate: caStatus(m).current, user };
        }
        const deps = { ...state, log: log.child({ user }) };
        return rotateAndAnnounce(deps, `forced by ${user}: ${body.reason}`, body.mode);
      },
    },
    {
      method: "GET",
      path: "/status",
      body: z.unknown(),
      async handle(_body, { state, headers, log }) {
        await mayRotate(state, headers, log);
        return caStatus(await state.ca.signingMaterial());
      },
    },
  ],
});
