// Applies distribution decisions against the API server: one namespace when an event names it, every namespace in
// a sweep (a ping, a rotation, a configuration change), from label-selected list pages rather than a GET each.
import { isWriteConflict, retryOnConflict } from "../kube/conflicts.ts";
import { listAll } from "../kube/pages.ts";
import type * as k8s from "@kubernetes/client-node";
import type { Kube } from "../kube/client.ts";
import { classifyKubeError, isNotFound } from "../kube/client.ts";
import { mergePatch, write } from "../kube/objects.ts";
import { createObject, deleteObject, pagesOf, readNamespace, readObject } from "../kube/core.ts";
import { recordEvent } from "../kube/events.ts";
import type { CaLocation } from "../ca-store/layout.ts";
import { readPublishedBundle } from "../ca-store/published-bundle.ts";
import { mapLimit } from "../runtime/concurrency.ts";
import type { Clock } from "../runtime/clock.ts";
import { malformed } from "../runtime/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import { DISTRIBUTED_SELECTOR, parseDistributionConfig } from "./config.ts";
import { copyNames, DISTRIBUTED_LABEL, FIELD_MANAGER } from "../names.ts";
import {
  isSelected,
  planNamespace,
  type Action,
  type CopyKind,
  type DesiredCopy,
  type FoundObject,
  type NamespaceFacts,
  type Source,
  type Wanted,
} from "./plan.ts";

const PAGE = 500;
const CONFLICT_ATTEMPTS = 3;

export interface DistributionDeps {
  kube: Kube;
  log: Logger;
  clock: Clock;
  component: string;
  where: CaLocation;
  /** The configuration ConfigMap's name in `where.namespace`. */
  configName: string;
  concurrency: number;
}

export type Tally = Record<"created" | "updated" | "deleted" | "current" | "foreign" | "failed", number>;
const emptyTally = (): Tally => ({ created: 0, updated: 0, deleted: 0, current: 0, foreign: 0, failed: 0 });

const sourceOf = (deps: DistributionDeps): Source => ({
  caNamespace: deps.where.namespace,
  bundleConfigMap: deps.where.bundleConfigMapName,
});

const nameOf = (o: { kind: string; namespace: string; name: string }) => `${o.kind} ${o.namespace}/${o.name}`;

/**
 * The configuration, and the bundle when distribution is on. An invalid configuration writes nothing (copies stay
 * as they are) and is a `malformed` error; `explain` also records it as an Event on the ConfigMap.
 */
export async function loadWanted(deps: DistributionDeps, explain: boolean): Promise<Wanted | undefined> {
  const { namespace } = deps.where;
  // Read side by side (latency is what a new namespace waits for); the bundle is used only if distribution is on.
  const bundle = readPublishedBundle(deps.kube, deps.where);
  bundle.catch(() => undefined);
  const cm = await readObject(deps.kube, "ConfigMap", namespace, deps.configName);
  const verdict = parseDistributionConfig(cm ? (cm.data ?? {}) : undefined);
  if (verdict.state === "absent") return undefined;
  if (verdict.state === "invalid") {
    const message =
      `CA distribution configuration ${namespace}/${deps.configName} is invalid, so no copy was created, changed or ` +
      `removed: ${verdict.problems.join("; ")}`;
    deps.log.warn("invalid CA distribution configuration", { problems: verdict.problems });
    if (explain) {
      await recordEvent(
        deps.kube,
        deps.log,
        { apiVersion: "v1", kind: "ConfigMap", namespace, name: deps.configName, uid: cm!.metadata?.uid },
        {
          type: "Warning",
          reason: "InvalidCADistributionConfig",
          message,
          component: deps.component,
          now: deps.clock.now(),
        },
      );
    }
    throw malformed(message, { problems: verdict.problems });
  }
  if (!verdict.config.enabled) return undefined;
  return { config: verdict.config, bundlePem: await bundle };
}

const namespaceFacts = (ns: k8s.V1Namespace): NamespaceFacts => ({
  name: ns.metadata!.name!,
  labels: ns.metadata?.labels,
  terminating: Boolean(ns.metadata?.deletionTimestamp) || ns.status?.phase === "Terminating",
});

const found = (kind: CopyKind, o: k8s.V1ConfigMap | k8s.V1Secret): FoundObject => ({
  kind,
  namespace: o.metadata!.namespace!,
  name: o.metadata!.name!,
  uid: o.metadata!.uid!,
  resourceVersion: o.metadata!.resourceVersion!,
  labels: o.metadata?.labels,
  data: o.data,
  ...("type" in o && o.type ? { type: o.type } : {}),
});

/** Brings one namespace's copies to what the configuration wants, re-reading everything it decides on. */
export async function distributeToNamespace(
  deps: DistributionDeps,
  namespace: string,
): Promise<{ outcome: string; tally: Tally }> {
  // Two events about one namespace can race (its own and its copy's): re-read and decide again.
  return retryOnConflict(
    CONFLICT_ATTEMPTS,
    () => distributeOnce(deps, namespace),
    (attempt) => deps.log.debug("conflict; deciding again from a fresh read", { namespace, attempt }),
  );
}

async function distributeOnce(
  deps: DistributionDeps,
  namespace: string,
): Promise<{ outcome: string; tally: Tally }> {
  const tally = emptyTally();
  // Independent reads side by side: a new namespace waits for their latency, not their sum.
  const [want, ns, ours, secret] = await Promise.all([
    loadWanted(deps, false),
    readNamespace(deps.kube, namespace),
    listAll(
      `copies in ${namespace}`,
      pagesOf(deps.kube, "ConfigMap", { namespace, labelSelector: DISTRIBUTED_SELECTOR, limit: PAGE }),
    ),
    // By name: the only Secret this function may read (RBAC resourceNames).
    readObject(deps.kube, "Secret", namespace, copyNames.secret),
  ]);
  if (!ns) return { outcome: "namespace-gone", tally };
  const facts = namespaceFacts(ns);
  const objects = ours.map((o) => found("ConfigMap", o));
  if (secret) objects.push(found("Secret", secret));
  const selected = want !== undefined && isSelected(want.config, deps.where.namespace, facts);
  const name = want?.config.configMapName;
  if (selected && name && !objects.some((o) => o.kind === "ConfigMap" && o.name === name)) {
    // Not one of ours by that name: is there someone else's?
    const cm = await readObject(deps.kube, "ConfigMap", namespace, name);
    if (cm) objects.push(found("ConfigMap", cm));
  }
  await execute(deps, planNamespace(want, sourceOf(deps), facts, objects), tally);
  return { outcome: facts.terminating ? "terminating" : selected ? "selected" : "not-selected", tally };
}

export interface SweepResult {
  namespaces: number;
  selected: number;
  tally: Tally;
}

/** Every namespace: three or four list calls, then writes only where a copy is missing, stale or unwanted. */
export async function distributeEverywhere(deps: DistributionDeps): Promise<SweepResult> {
  const want = await loadWanted(deps, true);
  const byName = want?.config.configMapName;
  const [namespaces, ourConfigMaps, namedConfigMaps, secrets] = await Promise.all([
    listAll("Namespaces", pagesOf(deps.kube, "Namespace", { limit: PAGE })),
    listAll(
      "distributed ConfigMaps",
      pagesOf(deps.kube, "ConfigMap", { labelSelector: DISTRIBUTED_SELECTOR, limit: PAGE }),
    ),
    // Same-named ConfigMaps that are not ours: left alone, and told why.
    byName
      ? listAll(
          `ConfigMaps named ${byName}`,
          pagesOf(deps.kube, "ConfigMap", { fieldSelector: `metadata.name=${byName}`, limit: PAGE }),
        )
      : [],
    // A list narrowed to one name is authorized by RBAC resourceNames: this function may not list other Secrets.
    listAll(
      `Secrets named ${copyNames.secret}`,
      pagesOf(deps.kube, "Secret", { fieldSelector: `metadata.name=${copyNames.secret}`, limit: PAGE }),
    ),
  ]);
  const byUid = new Map<string, FoundObject>();
  for (const o of [...ourConfigMaps, ...namedConfigMaps]) byUid.set(o.metadata!.uid!, found("ConfigMap", o));
  for (const o of secrets) byUid.set(o.metadata!.uid!, found("Secret", o));

  const foundIn = new Map<string, FoundObject[]>();
  for (const o of byUid.values()) foundIn.set(o.namespace, [...(foundIn.get(o.namespace) ?? []), o]);
  const tally = emptyTally();
  let selected = 0;
  const work: Array<{ ns: NamespaceFacts; actions: Action[] }> = [];
  for (const ns of namespaces.map(namespaceFacts)) {
    if (want && isSelected(want.config, deps.where.namespace, ns)) selected++;
    const actions = planNamespace(want, sourceOf(deps), ns, foundIn.get(ns.name) ?? []);
    if (actions.some((a) => a.do !== "none")) work.push({ ns, actions });
    else tally.current += actions.length;
  }
  const merge = (t: Tally) => {
    for (const k of Object.keys(t) as Array<keyof Tally>) tally[k] += t[k];
  };
  await mapLimit(work, deps.concurrency, async ({ ns, actions }) => {
    const done = emptyTally();
    try {
      await execute(deps, actions, done);
      merge(done);
    } catch (err) {
      try {
        // The lists were a snapshot; a namespace that moved on since is decided again from fresh reads.
        if (!isWriteConflict(err)) throw err;
        merge((await distributeToNamespace(deps, ns.name)).tally);
      } catch (again) {
        tally.failed++;
        deps.log.warn("could not distribute the CA bundle to a namespace", {
          namespace: ns.name,
          error: again instanceof Error ? again.message : String(again),
        });
      }
    }
  });
  return { namespaces: namespaces.length, selected, tally };
}

/** Each action touches a different object, so they run side by side; the first failure is reported. */
async function execute(deps: DistributionDeps, actions: Action[], tally: Tally): Promise<void> {
  const settled = await Promise.allSettled(actions.map((a) => perform(deps, a, tally)));
  const failed = settled.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

/** The count each action moves once it is done. */
const countedAs: Record<Action["do"], keyof Tally> = {
  none: "current",
  create: "created",
  replace: "created",
  update: "updated",
  delete: "deleted",
  "leave-foreign": "foreign",
};

async function perform(deps: DistributionDeps, a: Action, tally: Tally): Promise<void> {
  await act(deps, a);
  tally[countedAs[a.do]]++;
}

async function act(deps: DistributionDeps, a: Action): Promise<void> {
  switch (a.do) {
    case "none":
      return;
    case "create":
      return create(deps, a.desired);
    case "replace":
      await remove(deps, a.found);
      return create(deps, a.desired);
    case "update":
      return update(deps, a.found, a.desired);
    case "delete":
      return remove(deps, a.found);
    case "leave-foreign":
      return explainForeign(deps, a.found);
  }
}

async function create(deps: DistributionDeps, d: DesiredCopy): Promise<void> {
  const metadata = { name: d.name, namespace: d.namespace, labels: d.labels, annotations: d.annotations };
  await write(`create ${nameOf(d)}`, () =>
    d.kind === "ConfigMap"
      ? createObject(deps.kube, "ConfigMap", d.namespace, { metadata, data: d.data }, FIELD_MANAGER)
      : createObject(
          deps.kube,
          "Secret",
          d.namespace,
          { metadata, type: d.type, data: d.data },
          FIELD_MANAGER,
        ),
  );
  deps.log.info("distributed the CA bundle", { object: nameOf(d) });
}

async function update(deps: DistributionDeps, f: FoundObject, d: DesiredCopy): Promise<void> {
  // Conditional on the version we judged; keys a user added to our copy are dropped (null in a merge patch).
  const data: Record<string, string | null> = { ...d.data };
  for (const k of Object.keys(f.data ?? {})) if (!(k in d.data)) data[k] = null;
  await mergePatch(
    deps.kube,
    { apiVersion: "v1", kind: d.kind, namespace: d.namespace, name: d.name },
    { metadata: { resourceVersion: f.resourceVersion, labels: { [DISTRIBUTED_LABEL]: "true" } }, data },
  );
  deps.log.info("updated a CA bundle copy", { object: nameOf(d) });
}

async function remove(deps: DistributionDeps, f: FoundObject): Promise<void> {
  // Preconditions: if a user took the object over (removed our label) since we read it, this fails, not deletes.
  try {
    await deleteObject(deps.kube, f.kind, f.namespace, f.name, {
      uid: f.uid,
      resourceVersion: f.resourceVersion,
    });
  } catch (err) {
    if (isNotFound(err)) return;
    throw classifyKubeError(err, `delete ${nameOf(f)}`);
  }
  deps.log.info("removed a CA bundle copy", { object: nameOf(f) });
}

async function explainForeign(deps: DistributionDeps, f: FoundObject): Promise<void> {
  const message =
    `service-ca-functions did not write the CA bundle into this ${f.kind}: it already exists and is not a copy made ` +
    `by service-ca-functions (no label ${DISTRIBUTED_LABEL}=true), so it is left exactly as it is. Delete or rename ` +
    `it to receive the copy${f.kind === "ConfigMap" ? `, or choose another configMapName in ${deps.where.namespace}/${deps.configName}` : ""}.`;
  deps.log.info("left a same-named object alone", { object: nameOf(f) });
  await recordEvent(
    deps.kube,
    deps.log,
    { apiVersion: "v1", kind: f.kind, namespace: f.namespace, name: f.name, uid: f.uid },
    {
      type: "Warning",
      reason: "CABundleNotDistributed",
      message,
      component: deps.component,
      now: deps.clock.now(),
    },
  );
}
