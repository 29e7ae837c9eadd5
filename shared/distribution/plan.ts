// Which namespaces get copies, what each copy should hold, and what to do about what is there: pure decisions,
// shared by the one-namespace path (an event) and the sweep (a ping, a rotation, a configuration change).
import { ALWAYS_EXCLUDED, type DistributionConfig } from "./config.ts";
import { annotations, copyNames, dataKeys, DISTRIBUTED_LABEL } from "../names.ts";
import { selectorMatches } from "./selector.ts";

export type CopyKind = "ConfigMap" | "Secret";

export interface NamespaceFacts {
  name: string;
  labels?: Record<string, string>;
  /** Being deleted: nothing can be created there, and what is there goes with it. */
  terminating: boolean;
}

/** A ConfigMap or Secret found where a copy is (or was) meant to be: ours or a user's. */
export interface FoundObject {
  kind: CopyKind;
  namespace: string;
  name: string;
  uid: string;
  resourceVersion: string;
  labels?: Record<string, string>;
  data?: Record<string, string>;
  type?: string;
}

export interface DesiredCopy {
  kind: CopyKind;
  namespace: string;
  name: string;
  /** As the API stores it: plain strings for a ConfigMap, base64 for a Secret. */
  data: Record<string, string>;
  type?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export type Action =
  | { do: "create"; desired: DesiredCopy }
  | { do: "update"; found: FoundObject; desired: DesiredCopy }
  /** A Secret's type cannot change in place. */
  | { do: "replace"; found: FoundObject; desired: DesiredCopy }
  | { do: "delete"; found: FoundObject }
  | { do: "leave-foreign"; found: FoundObject; desired: DesiredCopy }
  | { do: "none"; found: FoundObject };

export interface Source {
  caNamespace: string;
  bundleConfigMap: string;
}

/** What distribution wants everywhere; undefined when it is off (absent or disabled), so every copy of ours goes. */
export interface Wanted {
  config: DistributionConfig;
  bundlePem: string;
}

export const isOurs = (o: { labels?: Record<string, string> }) => o.labels?.[DISTRIBUTED_LABEL] === "true";

export function isSelected(config: DistributionConfig, caNamespace: string, ns: NamespaceFacts): boolean {
  if (!config.enabled || ns.terminating) return false;
  if (ns.name === caNamespace || ALWAYS_EXCLUDED.includes(ns.name) || config.exclude.includes(ns.name))
    return false;
  return selectorMatches(config.namespaceSelector, ns.labels);
}

export function desiredCopies(
  config: DistributionConfig,
  source: Source,
  namespace: string,
  bundlePem: string,
): DesiredCopy[] {
  const meta = {
    namespace,
    labels: { [DISTRIBUTED_LABEL]: "true" },
    annotations: { [annotations.distributedFrom]: `${source.caNamespace}/${source.bundleConfigMap}` },
  };
  const copies: DesiredCopy[] = [
    {
      kind: "ConfigMap",
      name: config.configMapName,
      data: { [dataKeys.injectedBundle]: bundlePem },
      ...meta,
    },
  ];
  if (config.secret) {
    copies.push({
      kind: "Secret",
      name: copyNames.secret,
      type: "Opaque",
      data: { [dataKeys.copySecretBundle]: Buffer.from(bundlePem, "utf8").toString("base64") },
      ...meta,
    });
  }
  return copies;
}

const sameData = (a: Record<string, string> | undefined, b: Record<string, string>) => {
  const ak = Object.keys(a ?? {});
  return ak.length === Object.keys(b).length && ak.every((k) => a![k] === b[k]);
};

/**
 * What to do in one namespace. `found` holds the objects there that carry a copy's name or our label. A copy is
 * written only when it differs; anything without our label is left alone; ours that are no longer wanted go.
 */
export function planNamespace(
  want: Wanted | undefined,
  source: Source,
  ns: NamespaceFacts,
  found: FoundObject[],
): Action[] {
  // A terminating namespace takes every object with it; creating would fail and deleting is already underway.
  if (ns.terminating) return [];
  const wanted =
    want && isSelected(want.config, source.caNamespace, ns)
      ? desiredCopies(want.config, source, ns.name, want.bundlePem)
      : [];
  const actions: Action[] = [];
  const matched = new Set<FoundObject>();
  for (const desired of wanted) {
    const existing = found.find((f) => f.kind === desired.kind && f.name === desired.name);
    if (!existing) {
      actions.push({ do: "create", desired });
      continue;
    }
    matched.add(existing);
    if (!isOurs(existing)) actions.push({ do: "leave-foreign", found: existing, desired });
    else if (desired.type !== undefined && (existing.type ?? "Opaque") !== desired.type)
      actions.push({ do: "replace", found: existing, desired });
    else if (!sameData(existing.data, desired.data)) actions.push({ do: "update", found: existing, desired });
    else actions.push({ do: "none", found: existing });
  }
  for (const f of found) {
    if (!matched.has(f) && isOurs(f)) actions.push({ do: "delete", found: f });
  }
  return actions;
}
