// expiry-scan: the hourly repair (and the fan-out after a CA change): republish the bundle if it drifted and
// bring every annotated Service's Secret up to date, whatever events were lost.
import { z } from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { servingCertConfigShape } from "../../shared/serving-cert/config.ts";
import { apiServerEvent, pingEvent } from "../../shared/events/knative.ts";
import { CaStore } from "../../shared/ca-store/store.ts";
import { caLocationFrom, caStoreConfigShape, rotationConfigShape } from "../../shared/ca-store/layout.ts";
import { caExpiryGauge } from "../../shared/ca-store/observe.ts";
import { scanServices } from "../../shared/serving-cert/scan.ts";
import { ScanGate } from "../../shared/serving-cert/scan-gate.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import { rotateAndAnnounce } from "../../shared/ca-store/rotate.ts";
import { rotationDue } from "../../shared/pki/index.ts";
import { Counter, Gauge } from "prom-client";
import { workMetrics } from "../../shared/runtime/work-metrics.ts";
import { KeyPool } from "../../shared/pki/key-pool.ts";
import { availableParallelism } from "node:os";
import { injectAll, type FanOutResult } from "../../shared/inject/injector.ts";
import {
  apiServiceTarget,
  configMapTarget,
  crdTarget,
  mutatingWebhookTarget,
  validatingWebhookTarget,
} from "../../shared/inject/targets.ts";
import { isBundleConfigMap } from "../../shared/inject/bundle-source.ts";

const COMPONENT = "service-ca-functions/expiry-scan";
/** Outcomes exported as 0 when a scan found none, so an alert sees "none" rather than no data. */
const SCAN_OUTCOMES = ["issued", "current", "stripped", "foreign-secret", "gave-up", "failed"];
const allTargets = [
  configMapTarget,
  apiServiceTarget,
  crdTarget,
  mutatingWebhookTarget,
  validatingWebhookTarget,
];

export default defineFunction({
  name: "expiry-scan",
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "PingSource", name: "expiry-scan-hourly" },
    { kind: "ApiServerSource", name: "ca-bundle-to-expiry-scan" },
  ],
  description:
    "re-issues every serving certificate that is missing, broken, from a retired CA or near expiry, and republishes the CA bundle; runs on a ping and when the published CA bundle changes",
  config: {
    ...caStoreConfigShape,
    ...servingCertConfigShape,
    ...rotationConfigShape,
    SCAN_CONCURRENCY: z.coerce
      .number()
      .int()
      .min(1)
      .max(64)
      .default(8)
      .describe("Services reconciled at once"),
    SCAN_KEY_GENERATIONS: z.coerce
      .number()
      .int()
      .min(1)
      .max(64)
      .default(Math.max(1, availableParallelism() - 1))
      .describe(
        "RSA keys generated at once while re-issuing: one core fewer than the machine has, so a rotation's other fan-out (injection) is not starved",
      ),
    SCAN_MIN_INTERVAL_SECONDS: z.coerce
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(0)
      .describe(
        "at most one scan start per this many seconds per process, kind of event and CA; a request inside it is answered with the last scan's summary, marked coalesced. Scans never overlap either way (infra/ sets 60)",
      ),
  },
  // The bundle ConfigMap changes exactly when the CA does, and watching it needs no right to read Secrets.
  event: z.union([pingEvent, apiServerEvent([{ apiVersion: "v1", kind: "ConfigMap" }])]),
  init({ config, kube, clock, log, metrics }) {
    const where = caLocationFrom(config);
    return {
      where,
      concurrency: config.SCAN_CONCURRENCY,
      minRemainingDays: config.CA_ROTATE_MIN_REMAINING_DAYS,
      reinjected: new Counter({
        name: "service_ca_scan_reinjected_total",
        help: "Stale CA bundles re-injected by expiry-scan, by kind",
        labelNames: ["kind"],
        registers: [metrics],
      }),
      scanned: new Counter({
        name: "service_ca_scan_services_total",
        help: "Annotated Services seen by expiry-scan, by outcome (issued, current, stripped, foreign-secret, failed, ...)",
        labelNames: ["outcome"],
        registers: [metrics],
      }),
      // What the last scan found, as gauges: expiry-scan scales to zero between pings, so a scrape sees a fresh
      // process whose counters never show an increase; a gauge of the last scan is what an alert can read.
      lastScan: new Gauge({
        name: "service_ca_last_scan_services",
        help: "Annotated Services by outcome in expiry-scan's last scan (gave-up and foreign-secret: given up on)",
        labelNames: ["outcome"],
        registers: [metrics],
      }),
      lastScanTime: new Gauge({
        name: "service_ca_last_scan_timestamp_seconds",
        help: "Unix time at which expiry-scan last completed a scan of every annotated Service",
        registers: [metrics],
      }),
      gate: new ScanGate<Record<string, unknown>>(clock, config.SCAN_MIN_INTERVAL_SECONDS * 1000),
      deps: {
        kube: kube(),
        ca: new CaStore(kube(), where, clock, log, caExpiryGauge(metrics)),
        clock,
        log,
        validityDays: config.SERVING_CERT_VALIDITY_DAYS,
        refreshFraction: config.SERVING_CERT_REFRESH_FRACTION,
        singleLabelNames: config.SERVING_CERT_SINGLE_LABEL_NAMES,
        metrics: workMetrics(metrics),
        keyPool: new KeyPool(0, "rsa-2048", config.SCAN_KEY_GENERATIONS),
      },
    };
  },
  async handle(event, { state, log }) {
    if (event.source === "apiserver" && !isBundleConfigMap(state.where, event.ref)) {
      throw forbidden(
        `expiry-scan reacts only to the CA bundle ConfigMap ${state.where.namespace}/${state.where.bundleConfigMapName}`,
      );
    }
    // One scan at a time, and (SCAN_MIN_INTERVAL_SECONDS) one start per interval: a flood of pings costs one
    // scan. Another CA is another key, so a rotation's fan-out is never answered by a scan of the old CA.
    const ca = (await state.deps.ca.existingMaterial())?.name ?? "none";
    const { result, coalesced } = await state.gate.run(`${event.source}:${ca}`, async () => {
      const deps = { ...state.deps, log };
      let material = await deps.ca.signingMaterial();
      // The safety net for a missed daily ping: the CA itself is due and no rotation happened.
      let rotated: Record<string, unknown> | undefined;
      if (rotationDue(material.signer.cert, deps.clock.now(), state.minRemainingDays)) {
        rotated = await rotateAndAnnounce(
          {
            ...deps,
            store: deps.ca,
            where: state.where,
            component: COMPONENT,
            now: deps.clock.now(),
          },
          `automatic (expiry-scan): fewer than ${state.minRemainingDays} days left`,
          "overlap",
        );
        material = await deps.ca.signingMaterial();
      }
      const bundleRepublished = await deps.ca.publishBundle(material);
      const scan = await scanServices(deps, state.concurrency);
      for (const [outcome, n] of Object.entries(scan.outcomes)) state.scanned.inc({ outcome }, n);
      for (const outcome of new Set([...SCAN_OUTCOMES, ...Object.keys(scan.outcomes)])) {
        state.lastScan.set({ outcome }, scan.outcomes[outcome as keyof typeof scan.outcomes] ?? 0);
      }
      state.lastScanTime.set(Math.floor(deps.clock.now().getTime() / 1000));
      // On its ping, every annotated injection target too, page by page: stale bundles are re-injected even if
      // every event and every injector's own repair ping was lost. A bundle change is the injectors' own event;
      // repeating their fan-out here would only race them into writing each object twice.
      const injectorDeps = {
        kube: deps.kube,
        clock: deps.clock,
        log,
        component: COMPONENT,
        metrics: deps.metrics,
      };
      const injected: Record<string, FanOutResult> = {};
      for (const target of event.source === "ping" ? allTargets : []) {
        injected[target.kind] = await injectAll(injectorDeps, target, material.bundlePem);
        state.reinjected.inc({ kind: target.kind }, injected[target.kind]!.injected);
      }
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
