// expiry-scan: the hourly repair (and the fan-out after a CA change): rotate a CA that is due, republish the bundle
// if it drifted, bring every annotated Service's Secret up to date and, on its ping, re-inject every kind.
import * as z from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { apiServerEvent, pingEvent } from "../../shared/events/knative.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import { eventComponent } from "../../shared/names.ts";
import { openCaStore } from "../../shared/ca-store/store.ts";
import { caStoreConfigShape, rotationConfigShape } from "../../shared/ca-store/layout.ts";
import { isBundleConfigMap } from "../../shared/ca-store/published-bundle.ts";
import { rotateIfDue } from "../../shared/ca-store/rotate.ts";
import { scanConfigShape, servingCertConfigShape } from "../../shared/serving-cert/config.ts";
import { scanServices } from "../../shared/serving-cert/scan.ts";
import { ScanGate } from "../../shared/serving-cert/scan-gate.ts";
import { KeyPool } from "../../shared/serving-cert/key-pool.ts";
import { issuanceMetrics, scanMetrics } from "../../shared/serving-cert/metrics.ts";
import { injectKinds } from "../../shared/inject/injector.ts";
import { injectionTargets } from "../../shared/inject/targets.ts";
import { injectionMetrics, reinjectionMetrics } from "../../shared/inject/metrics.ts";

const name = "expiry-scan";
const component = eventComponent(name);

export default defineFunction({
  name,
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "PingSource", name: "expiry-scan-hourly" },
    { kind: "ApiServerSource", name: "ca-bundle-to-expiry-scan" },
  ],
  description:
    "re-issues every serving certificate that is missing, broken, from a retired CA or near expiry, and republishes the CA bundle; runs on a ping and when the published CA bundle changes",
  config: { ...caStoreConfigShape, ...servingCertConfigShape, ...rotationConfigShape, ...scanConfigShape },
  // The bundle ConfigMap changes exactly when the CA does, and watching it needs no right to read Secrets.
  event: z.union([pingEvent, apiServerEvent([{ apiVersion: "v1", kind: "ConfigMap" }])]),
  init(ctx) {
    const { config, kube, clock, log, metrics } = ctx;
    return {
      concurrency: config.SCAN_CONCURRENCY,
      minRemainingDays: config.CA_ROTATE_MIN_REMAINING_DAYS,
      recordScan: scanMetrics(metrics),
      reinjected: reinjectionMetrics(metrics),
      injectionMetrics: injectionMetrics(metrics),
      gate: new ScanGate<Record<string, unknown>>(clock, config.SCAN_MIN_INTERVAL_SECONDS * 1000),
      deps: {
        kube: kube(),
        ca: openCaStore(ctx),
        clock,
        log,
        component,
        validityDays: config.SERVING_CERT_VALIDITY_DAYS,
        refreshFraction: config.SERVING_CERT_REFRESH_FRACTION,
        singleLabelNames: config.SERVING_CERT_SINGLE_LABEL_NAMES,
        keepKeyOnRotation: config.SERVING_CERT_KEEP_KEY_ON_ROTATION,
        metrics: issuanceMetrics(metrics),
        keyPool: new KeyPool(0, "rsa-2048", config.SCAN_KEY_GENERATIONS),
      },
    };
  },
  async handle(event, { state, log }) {
    const { where } = state.deps.ca;
    if (event.source === "apiserver" && !isBundleConfigMap(where, event.ref)) {
      throw forbidden(
        `expiry-scan reacts only to the CA bundle ConfigMap ${where.namespace}/${where.bundleConfigMapName}`,
      );
    }
    // One scan at a time, and (SCAN_MIN_INTERVAL_SECONDS) one start per interval: a flood of pings costs one
    // scan. Another CA is another key, so a rotation's fan-out is never answered by a scan of the old CA.
    const ca = (await state.deps.ca.existingMaterial())?.name ?? "none";
    const { result, coalesced } = await state.gate.run(`${event.source}:${ca}`, async () => {
      const deps = { ...state.deps, log };
      let material = await deps.ca.signingMaterial();
      // The safety net for a missed daily ping: the CA itself is due and no rotation happened.
      const rotated = await rotateIfDue(deps, material, state.minRemainingDays, "automatic (expiry-scan)");
      if (rotated) material = await deps.ca.signingMaterial();
      const bundleRepublished = await deps.ca.publishBundle(material);
      const scan = await scanServices(deps, state.concurrency);
      state.recordScan(scan, deps.clock.now());
      // On its ping, every annotated injection target too, page by page: stale bundles are re-injected even if
      // every event and every injector's own repair ping was lost. A bundle change is the injectors' own event;
      // repeating their fan-out here would only race them into writing each object twice.
      const targets = event.source === "ping" ? injectionTargets : [];
      const injected = await injectKinds(
        { ...deps, metrics: state.injectionMetrics },
        targets,
        material.bundlePem,
      );
      for (const [kind, r] of Object.entries(injected)) state.reinjected(kind, r.injected);
      log.info("scan summary", { ...scan, injected, bundleRepublished, rotated: rotated?.outcome ?? "no" });
      return {
        outcome: "scanned",
        ca: material.name,
        bundleRepublished,
        rotated: rotated ?? null,
        ...scan,
        injected,
      };
    });
    return coalesced ? { ...result, coalesced } : result;
  },
});
