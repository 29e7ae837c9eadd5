// `check service <ns>/<name>`: why this Service has, or has not, its certificate, and the fix where there is one.
import * as k8s from "@kubernetes/client-node";
import { annotations } from "../shared/names.ts";
import {
  failureCount,
  MAX_FAILURES,
  originatingUid,
  requestedSecretName,
} from "../shared/serving-cert/annotations.ts";
import { reissueReason } from "../shared/serving-cert/decide.ts";
import { hostnamesFor } from "../shared/serving-cert/reconcile.ts";
import { servingCertConfigShape } from "../shared/serving-cert/config.ts";
import { z } from "zod";
import { call, EXIT, PluginError, tryCall } from "./access.ts";
import { readCa } from "./ca.ts";
import { describeSecret, type SecretReport } from "./inspect-secret.ts";

const refreshFraction = z.object(servingCertConfigShape).parse({}).SERVING_CERT_REFRESH_FRACTION;

export interface ServiceReport {
  service: string;
  ok: boolean;
  secretName?: string;
  verdict: string;
  fix?: string;
  certificate?: SecretReport;
  wantedDnsNames?: string[];
  error?: string;
  failures: number;
  lastEvent?: {
    reason?: string;
    message?: string;
    type?: string;
    count?: number;
    last?: string;
    object: string;
  };
}

const unb64 = (s: string) => Buffer.from(s, "base64").toString("utf8");

async function lastEvent(kc: k8s.KubeConfig, namespace: string, kind: string, name: string) {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const res = await tryCall({ verb: "list", resource: "events", namespace }, () =>
    core.listNamespacedEvent({
      namespace,
      fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name}`,
    }),
  );
  const when = (e: k8s.CoreV1Event) =>
    new Date(e.lastTimestamp ?? e.eventTime ?? e.metadata?.creationTimestamp ?? 0).getTime();
  const e = (res.value?.items ?? []).sort((a, b) => when(b) - when(a))[0];
  return e
    ? {
        object: `${kind} ${namespace}/${name}`,
        reason: e.reason,
        message: e.message,
        type: e.type,
        count: e.count,
        last: new Date(when(e)).toISOString(),
      }
    : undefined;
}

export async function checkService(
  kc: k8s.KubeConfig,
  namespace: string,
  name: string,
  now: Date,
): Promise<ServiceReport> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const svc = await call({ verb: "get", resource: "services", namespace, name }, () =>
    core.readNamespacedService({ namespace, name }),
  );
  if (!svc) throw new PluginError(`Service ${namespace}/${name} not found`, EXIT.error);
  const service = `${namespace}/${name}`;
  const secretName = requestedSecretName(svc);
  const failures = failureCount(svc);
  const error = svc.metadata?.annotations?.[annotations.error];
  const base = { service, secretName, failures, error };
  if (!secretName) {
    return {
      ...base,
      ok: false,
      verdict: "not annotated: no serving certificate is requested",
      fix: `kubectl -n ${namespace} annotate service ${name} ${annotations.secretName}=${name}-tls`,
    };
  }
  const event = async () =>
    (await lastEvent(kc, namespace, "Service", name)) ??
    (await lastEvent(kc, namespace, "Secret", secretName));
  const secret = await call({ verb: "get", resource: "secrets", namespace, name: secretName }, () =>
    core.readNamespacedSecret({ namespace, name: secretName }),
  );
  if (secret && originatingUid(secret) !== svc.metadata?.uid) {
    return {
      ...base,
      ok: false,
      verdict: `Secret ${namespace}/${secretName} is in the way: it was not created for this Service, so it is left untouched`,
      fix:
        `delete it (kubectl -n ${namespace} delete secret ${secretName}) or choose another name ` +
        `(kubectl -n ${namespace} annotate service ${name} --overwrite ${annotations.secretName}=<other>)`,
      lastEvent: await event(),
    };
  }
  if (failures >= MAX_FAILURES) {
    return {
      ...base,
      ok: false,
      verdict: `given up after ${failures} failed attempts${error ? `: ${error}` : ""}`,
      fix: `fix the cause, then retry: kubectl -n ${namespace} annotate service ${name} ${annotations.error}- ${annotations.errorNum}-`,
      lastEvent: await event(),
    };
  }
  if (!secret) {
    return {
      ...base,
      ok: false,
      verdict: `Secret ${namespace}/${secretName} does not exist yet`,
      fix: "issue-serving-cert creates it within seconds of the annotation; if it does not, run kubectl service-ca status (is issue-serving-cert Ready, and its source?)",
      lastEvent: await event(),
    };
  }
  const ca = await readCa(kc);
  const certificate = describeSecret(
    `${namespace}/${secretName}`,
    secret.data ?? {},
    ca.published.length ? ca.published : ca.trusted,
    now,
  );
  const wantedDnsNames = hostnamesFor(svc);
  const reason = ca.current
    ? await reissueReason(
        {
          annotations: secret.metadata?.annotations ?? {},
          data: Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, unb64(v)])),
        },
        {
          hostnames: wantedDnsNames,
          keyAlgorithm:
            svc.metadata?.annotations?.[annotations.keyAlgorithm] === "ecdsa-p256"
              ? "ecdsa-p256"
              : "rsa-2048",
          currentCa: ca.current,
          now,
          refreshFraction,
        },
      )
    : "no current CA found";
  const ok = certificate.valid && !reason;
  return {
    ...base,
    ok,
    verdict: ok
      ? `has a valid certificate from the current CA until ${certificate.notAfter}`
      : `${[...certificate.problems, ...(reason ? [`due for re-issue: ${reason}`] : [])].join("; ")}`,
    fix: ok
      ? undefined
      : "expiry-scan re-issues it at its next hourly scan (issue-serving-cert at once on any change); to force it now, delete the Secret: " +
        `kubectl -n ${namespace} delete secret ${secretName}`,
    certificate,
    wantedDnsNames,
    lastEvent: await event(),
  };
}

export function printService(r: ServiceReport): string {
  const lines = [`Service:      ${r.service}`, `Certificate:  ${r.ok ? "OK" : "NOT OK"}: ${r.verdict}`];
  if (r.secretName) lines.push(`Secret:       ${r.secretName}`);
  if (r.certificate) {
    lines.push(
      `DNS names:    ${r.certificate.dnsNames.join(", ")}${r.wantedDnsNames && r.wantedDnsNames.join() !== r.certificate.dnsNames.join() ? ` (wanted: ${r.wantedDnsNames.join(", ")})` : ""}`,
      `Issuer:       ${r.certificate.issuer}`,
      `Not after:    ${r.certificate.notAfter}`,
    );
  }
  if (r.error) lines.push(`Last error:   ${r.error} (${r.failures} of ${MAX_FAILURES} attempts)`);
  if (r.lastEvent) {
    lines.push(
      `Last event:   ${r.lastEvent.type ?? ""} ${r.lastEvent.reason ?? ""} on ${r.lastEvent.object} (x${r.lastEvent.count ?? 1}, ${r.lastEvent.last}): ${r.lastEvent.message ?? ""}`,
    );
  }
  if (r.fix) lines.push(`Fix:          ${r.fix}`);
  return lines.join("\n");
}
