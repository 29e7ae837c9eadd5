// distribute-ca: copies the service CA bundle into every selected namespace (opt-in, configured by a ConfigMap in
// the CA namespace), keeps every copy current through rotations, and removes only the copies it made.
import * as z from "zod";
import { defineFunction } from "../../shared/host/define.ts";
import { apiServerEvent, pingEvent } from "../../shared/events/knative.ts";
import { caLocationFrom, caStoreConfigShape } from "../../shared/ca-store/layout.ts";
import { malformed, transient } from "../../shared/runtime/errors.ts";
import { distributionConfigShape } from "../../shared/distribution/config.ts";
import { eventComponent } from "../../shared/names.ts";
import { distributeEverywhere, distributeToNamespace } from "../../shared/distribution/reconcile.ts";

export default defineFunction({
  name: "distribute-ca",
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "ApiServerSource", name: "namespaces" },
    { kind: "ApiServerSource", name: "ca-copies" },
    { kind: "ApiServerSource", name: "ca-copy-secrets" },
    { kind: "ApiServerSource", name: "ca-state-to-distribute-ca" },
    { kind: "PingSource", name: "distribute-ca-hourly" },
  ],
  description:
    "publishes the service CA bundle into every namespace selected by the ConfigMap DISTRIBUTION_CONFIGMAP_NAME " +
    "(a ConfigMap with key service-ca.crt and, if enabled, a Secret service-root-ca with key ca.crt); reacts to " +
    "Namespaces, the bundle, the configuration, its own copies, and a ping",
  config: { ...caStoreConfigShape, ...distributionConfigShape },
  event: z.union([
    pingEvent,
    apiServerEvent([
      { apiVersion: "v1", kind: "Namespace" },
      { apiVersion: "v1", kind: "ConfigMap" },
      { apiVersion: "v1", kind: "Secret" },
    ]),
  ]),
  init: ({ config, kube, clock }) => ({
    kube: kube(),
    clock,
    component: eventComponent("distribute-ca"),
    where: caLocationFrom(config),
    configName: config.DISTRIBUTION_CONFIGMAP_NAME,
    concurrency: config.DISTRIBUTION_CONCURRENCY,
  }),
  async handle(event, { state, log }) {
    const deps = { ...state, log };
    const sweep = async (trigger: string) => {
      const result = await distributeEverywhere(deps);
      if (result.tally.failed > 0)
        throw transient(`${result.tally.failed} namespace(s) could not be brought up to date; the rest are`);
      return { outcome: "swept", trigger, ...result };
    };
    if (event.source === "ping") return sweep("ping");

    const { kind, namespace, name } = event.ref;
    if (kind === "Namespace") {
      if (event.action === "delete") return { outcome: "namespace-deleted" };
      return distributeToNamespace(deps, name);
    }
    if (!namespace) throw malformed(`a ${kind} event without a namespace`);
    if (namespace === state.where.namespace) {
      // A rotation (the bundle changed) or a new configuration: every namespace is affected.
      if (kind === "ConfigMap" && name === state.where.bundleConfigMapName)
        return event.action === "delete" ? { outcome: "bundle-deleted" } : sweep("bundle");
      if (kind === "ConfigMap" && name === state.configName) return sweep("configuration");
      return { outcome: "ignored" };
    }
    // One of the copies (or a same-named object) changed or went: decide its namespace again.
    return distributeToNamespace(deps, namespace);
  },
});
