// `status`: the CA(s) trusted now, the next rotation, the published bundle, readiness, and Services' certificates.
import * as k8s from "@kubernetes/client-node";
import { readLeaf, type x509 } from "../shared/pki/index.ts";
import { annotations, dataKeys, FUNCTION_COMPONENT_LABEL, MANAGED_BY_LABEL } from "../shared/names.ts";
import { failureCount, MAX_FAILURES, requestedSecretName } from "../shared/serving-cert/annotations.ts";
import { DAY_MS } from "../shared/pki/index.ts";
import { tryCall } from "./access.ts";
import { nextRotation, readCa, where } from "./ca.ts";

/** A certificate that runs out within this is "expiring soon". */
export const EXPIRING_SOON_DAYS = 30;

const describe = (c: x509.X509Certificate) => ({
  subject: c.subject,
  notBefore: c.notBefore.toISOString(),
  notAfter: c.notAfter.toISOString(),
});

interface Readiness {
  kind: string;
  name: string;
  ready: boolean;
  reason?: string;
}

type Conditioned = { metadata?: { name?: string }; status?: { conditions?: k8s.V1Condition[] } };

const readyOf = (kind: string, o: Conditioned): Readiness => {
  const c = o.status?.conditions?.find((x) => x.type === "Ready");
  return {
    kind,
    name: o.metadata?.name ?? "?",
    ready: c?.status === "True",
    reason: c?.status === "True" ? undefined : (c?.message ?? c?.reason ?? "no Ready condition"),
  };
};

async function readiness(kc: k8s.KubeConfig) {
  const co = kc.makeApiClient(k8s.CustomObjectsApi);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const namespace = where.namespace;
  const custom = (group: string, plural: string) =>
    tryCall({ verb: "list", resource: `${plural}.${group}`, namespace }, async () => {
      const list = (await co.listNamespacedCustomObject({ group, version: "v1", namespace, plural })) as {
        items: Conditioned[];
      };
      return list.items;
    });
  const denied: string[] = [];
  const out: Readiness[] = [];
  const ksvc = await custom("serving.knative.dev", "services");
  if (ksvc.denied) denied.push(ksvc.denied);
  if (ksvc.value && ksvc.value.length > 0) out.push(...ksvc.value.map((s) => readyOf("Knative Service", s)));
  else {
    // Knative Eventing only: the functions are Deployments.
    const deps = await tryCall({ verb: "list", resource: "deployments.apps", namespace }, () =>
      apps.listNamespacedDeployment({
        namespace,
        labelSelector: Object.entries(FUNCTION_COMPONENT_LABEL)
          .map(([k, v]) => `${k}=${v}`)
          .join(","),
      }),
    );
    if (deps.denied) denied.push(deps.denied);
    for (const d of deps.value?.items ?? []) {
      const want = d.spec?.replicas ?? 1;
      const have = d.status?.availableReplicas ?? 0;
      out.push({
        kind: "Deployment",
        name: d.metadata!.name!,
        ready: have >= want,
        reason: have >= want ? undefined : `${have}/${want} available`,
      });
    }
  }
  for (const [plural, kind] of [
    ["apiserversources", "ApiServerSource"],
    ["pingsources", "PingSource"],
  ] as const) {
    const src = await custom("sources.knative.dev", plural);
    if (src.denied) denied.push(src.denied);
    out.push(...(src.value ?? []).map((s) => readyOf(kind, s)));
  }
  return { components: out, denied };
}

async function serviceCounts(kc: k8s.KubeConfig, now: Date) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const services = await tryCall({ verb: "list", resource: "services" }, () =>
    core.listServiceForAllNamespaces(),
  );
  const selector = Object.entries(MANAGED_BY_LABEL)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
  const secrets = await tryCall({ verb: "list", resource: "secrets" }, () =>
    core.listSecretForAllNamespaces({ labelSelector: selector }),
  );
  if (!services.value) return { denied: services.denied };
  const annotated = services.value.items.filter((s) => requestedSecretName(s));
  const givenUp = annotated.filter(
    (s) => failureCount(s) >= MAX_FAILURES || annotations.error in (s.metadata?.annotations ?? {}),
  );
  const counts: Record<string, number | undefined> = {
    annotated: annotated.length,
    givenUp: givenUp.length,
    issued: undefined,
    expiringSoon: undefined,
  };
  if (secrets.value) {
    const byName = new Map(
      secrets.value.items.map((s) => [`${s.metadata!.namespace}/${s.metadata!.name}`, s]),
    );
    const leaves = annotated.flatMap((s) => {
      const secret = byName.get(`${s.metadata!.namespace}/${requestedSecretName(s)}`);
      const leaf = readLeaf(Buffer.from(secret?.data?.[dataKeys.tlsCert] ?? "", "base64").toString("utf8"));
      return leaf ? [leaf] : [];
    });
    counts.issued = leaves.length;
    counts.expiringSoon = leaves.filter(
      (l) => l.notAfter.getTime() - now.getTime() < EXPIRING_SOON_DAYS * DAY_MS,
    ).length;
  }
  return {
    counts,
    givenUpServices: givenUp.map((s) => `${s.metadata!.namespace}/${s.metadata!.name}`),
    denied: secrets.denied,
  };
}

export async function status(kc: k8s.KubeConfig, now: Date) {
  const ca = await readCa(kc);
  const rotation = ca.current ? nextRotation(ca.current, now) : undefined;
  const bundleMatches =
    ca.source === "secret"
      ? ca.published.map((c) => c.toString("pem")).join() === ca.trusted.map((c) => c.toString("pem")).join()
      : undefined;
  const ready = await readiness(kc);
  const services = await serviceCounts(kc, now);
  return {
    source:
      ca.source === "secret"
        ? `Secret ${where.namespace}/${where.secretName}`
        : `ConfigMap ${where.namespace}/${where.bundleConfigMapName} (${ca.secretDenied ?? "the CA Secret is not readable"})`,
    current: ca.current ? describe(ca.current) : undefined,
    trusted: ca.trusted.map(describe),
    nextRotation: rotation ? { at: rotation.at.toISOString(), due: rotation.due } : undefined,
    lastRotation: ca.lastRotation,
    published: {
      certificates: ca.published.map(describe),
      matchesSecret: bundleMatches,
      denied: ca.publishedDenied,
    },
    components: ready.components,
    services: services.counts,
    givenUpServices: services.givenUpServices,
    denied: [...ready.denied, ...(services.denied ? [services.denied] : [])],
  };
}

export type Status = Awaited<ReturnType<typeof status>>;

export const healthy = (s: Status) =>
  s.components.every((c) => c.ready) && (s.services?.givenUp ?? 0) === 0 && !s.nextRotation?.due;

export function printStatus(s: Status): string {
  const lines = [`CA (from ${s.source}):`];
  if (s.current) lines.push(`  current:    ${s.current.subject}, not after ${s.current.notAfter}`);
  for (const c of s.trusted) lines.push(`  trusted:    ${c.subject}, not after ${c.notAfter}`);
  if (s.nextRotation)
    lines.push(
      `  rotation:   ${s.nextRotation.due ? "DUE NOW" : `next automatic rotation at ${s.nextRotation.at}`}`,
    );
  if (s.lastRotation?.at)
    lines.push(
      `  last:       rotated at ${s.lastRotation.at} (${s.lastRotation.reason ?? "no reason recorded"})`,
    );
  lines.push(`Published bundle (ConfigMap ${where.namespace}/${where.bundleConfigMapName}):`);
  if (s.published.denied) lines.push(`  unknown: ${s.published.denied}`);
  for (const c of s.published.certificates) lines.push(`  ${c.subject}, not after ${c.notAfter}`);
  if (s.published.matchesSecret === false)
    lines.push("  DIFFERS from the CA Secret's bundle (expiry-scan republishes it)");
  lines.push("Functions and sources:");
  for (const c of s.components)
    lines.push(
      `  ${c.ready ? "Ready    " : "NOT READY"} ${c.kind} ${c.name}${c.reason ? `: ${c.reason}` : ""}`,
    );
  const n = s.services;
  lines.push("Services:");
  if (n) {
    const show = (v: number | undefined) => (v === undefined ? "unknown" : String(v));
    lines.push(
      `  ${n.annotated} annotated, ${show(n.issued)} issued, ${n.givenUp} given up, ${show(n.expiringSoon)} expiring within ${EXPIRING_SOON_DAYS} days`,
    );
    for (const g of s.givenUpServices ?? [])
      lines.push(`  given up: ${g} (kubectl service-ca check service ${g})`);
  }
  for (const d of s.denied) lines.push(`  not shown: ${d}`);
  return lines.join("\n");
}
