// infra/monitoring's alerts fire exactly when they should: the real promtool (built from the Prometheus Go module)
// checks the rules and runs them over series of a healthy system (always up, or scaled to zero between pings)
// and of each failure, asserting which alerts fire, with which labels and annotations, and which stay silent.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import yaml from "js-yaml";
import { functionNames } from "../../shared/host/functions.ts";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "../..");
const H = 3600;
const D = 86400;
const namespace = "service-ca";
const job = "service-ca/service-ca-functions";
/** The functions that load the CA and so export its expiry; the injectors and distribute-ca never do. */
const SIGNERS = ["expiry-scan", "issue-serving-cert", "rotate-ca", "sign-csr"];

interface Rule {
  alert?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface PrometheusRule {
  spec: { groups: Array<{ name: string; rules: Rule[] }> };
}

let promtool: string;
let rules: Map<string, Rule>;
let rulesYaml: string;

before(async () => {
  const { stdout } = await run("bash", [join(repo, "dev/controlplane/build-promtool.sh")], {
    maxBuffer: 16 << 20,
  });
  promtool = stdout.trim().split("\n").at(-1)!;
  const doc = yaml.load(
    await readFile(join(repo, "infra/monitoring/prometheusrule.yaml"), "utf8"),
  ) as PrometheusRule;
  rulesYaml = yaml.dump({ groups: doc.spec.groups });
  rules = new Map(doc.spec.groups.flatMap((g) => g.rules.map((r) => [r.alert!, r] as const)));
});

// --- series, in promtool's notation: one sample a minute; `_` is a minute with no scrape ---

type Labels = Record<string, string>;
interface Series {
  series: string;
  values: string;
}
const seriesName = (metric: string, labels: Labels) =>
  `${metric}{${Object.entries({ namespace, ...labels })
    .map(([k, v]) => `${k}="${v}"`)
    .join(",")}}`;

/** A value known every minute for `hours`, changing by `perMinute`. */
const always = (hours: number, value: number, perMinute = 0) => `${value}+${perMinute}x${hours * 60}`;

/**
 * A process woken by its hourly ping and scaled to zero two minutes later: three scrapes an hour, then nothing.
 * `valueAt(hour)` is what it exports in that hour.
 */
const hourly = (hours: number, valueAt: (hour: number) => number) =>
  Array.from({ length: hours }, (_, h) => `${valueAt(h)} ${valueAt(h)} ${valueAt(h)} _x57`).join(" ");

interface System {
  hours: number;
  /** Knative: every function but issue-serving-cert scaled to zero between its pings. */
  scaleToZero?: boolean;
  caNotAfter?: number;
  oldestTrustedNotAfter?: number;
  lastScan?: Partial<Record<string, number>>;
  /** hours in which expiry-scan completes its scan (default: every hour) */
  scansIn?: (hour: number) => boolean;
  /** 5xx responses a minute, per function */
  failing?: Record<string, number>;
  down?: string[];
  absent?: string[];
}

/** What every function of the system exports today, shaped by `s`. */
function system(s: System): Series[] {
  const out: Series[] = [];
  const caNotAfter = s.caNotAfter ?? 2 * 365 * D;
  for (const fn of functionNames()) {
    if (s.absent?.includes(fn)) continue;
    const pinged = s.scaleToZero && fn !== "issue-serving-cert";
    const values = (v: number, perMinute = 0) =>
      pinged ? hourly(s.hours, (h) => v + perMinute * 60 * h) : always(s.hours, v, perMinute);
    const pod = `${fn}-00001-deployment-abc12`;
    out.push({
      series: seriesName("up", { job, function: fn, pod }),
      values: values(s.down?.includes(fn) ? 0 : 1),
    });
    const requests = (status: string, outcome: string) =>
      seriesName("service_ca_requests_total", { function: fn, route: "cloudevent", status, outcome });
    out.push({ series: requests("200", "ok"), values: values(0, 5) });
    if (s.failing?.[fn]) out.push({ series: requests("503", "transient"), values: values(0, s.failing[fn]) });
    if (SIGNERS.includes(fn)) {
      out.push({
        series: seriesName("service_ca_expiry_time_seconds", { function: fn }),
        values: values(caNotAfter),
      });
      out.push({
        series: seriesName("service_ca_trusted_oldest_expiry_time_seconds", { function: fn }),
        values: values(s.oldestTrustedNotAfter ?? caNotAfter),
      });
    }
    if (fn === "expiry-scan") {
      const scans = s.scansIn ?? (() => true);
      // Each scan's figures, from its hour on; the timestamp is the time of the scan (always up: every minute).
      const scanned = (v: (h: number) => number, perMinute = 0) =>
        pinged || s.scansIn
          ? Array.from({ length: s.hours }, (_, h) =>
              scans(h) ? `${v(h)} ${v(h)} ${v(h)} _x57` : "_x60",
            ).join(" ")
          : always(s.hours, v(0), perMinute);
      const outcomes = { issued: 0, current: 12, stripped: 0, "foreign-secret": 0, "gave-up": 0, failed: 0 };
      for (const [outcome, n] of Object.entries({ ...outcomes, ...s.lastScan })) {
        out.push({
          series: seriesName("service_ca_last_scan_services", { function: fn, outcome }),
          values: scanned(() => n ?? 0),
        });
      }
      out.push({
        series: seriesName("service_ca_last_scan_timestamp_seconds", { function: fn }),
        values: scanned((h) => h * H, 60),
      });
    }
  }
  return out;
}

interface Expect {
  at: string;
  alert: string;
  /** the labels the alert carries besides the rule's own; omit for "must not fire" */
  firing?: Labels[];
}

/** The alert promtool must report: the rule's labels and annotations, its `{{ $labels.x }}` filled in. */
function expected(alert: string, labels: Labels) {
  const rule = rules.get(alert);
  assert.ok(rule, `no rule ${alert}`);
  const all = { ...labels, ...rule.labels };
  const fill = (t: string) => t.replace(/\{\{ \$labels\.(\w+) \}\}/g, (_, k: string) => all[k] ?? "");
  return {
    exp_labels: all,
    exp_annotations: Object.fromEntries(Object.entries(rule.annotations ?? {}).map(([k, v]) => [k, fill(v)])),
  };
}

/** Every alert of the rule file silent at `at`. */
const silent = (at: string): Expect[] => [...rules.keys()].map((alert) => ({ at, alert }));

async function promtoolTest(groups: Array<{ name: string; series: Series[]; expect: Expect[] }>) {
  const dir = await mkdtemp(join(tmpdir(), "service-ca-alerts-"));
  try {
    await writeFile(join(dir, "rules.yaml"), rulesYaml);
    const tests = {
      rule_files: ["rules.yaml"],
      evaluation_interval: "1m",
      tests: groups.map((g) => ({
        name: g.name,
        interval: "1m",
        input_series: g.series,
        alert_rule_test: g.expect.map((e) => ({
          eval_time: e.at,
          alertname: e.alert,
          exp_alerts: (e.firing ?? []).map((labels) => expected(e.alert, labels)),
        })),
      })),
    };
    await writeFile(join(dir, "tests.yaml"), yaml.dump(tests, { lineWidth: -1 }));
    const res = await run(promtool, ["test", "rules", join(dir, "tests.yaml")], {
      maxBuffer: 16 << 20,
    }).catch((err: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${err.stdout ?? ""}${err.stderr ?? ""}`);
    });
    assert.match(res.stdout, /SUCCESS/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

describe("alerts (infra/monitoring, promtool)", () => {
  it("promtool check rules accepts the PrometheusRule's groups", async () => {
    const dir = await mkdtemp(join(tmpdir(), "service-ca-rules-"));
    try {
      await writeFile(join(dir, "rules.yaml"), rulesYaml);
      const { stdout } = await run(promtool, ["check", "rules", join(dir, "rules.yaml")]);
      assert.match(stdout, new RegExp(`SUCCESS: ${rules.size} rules found`));
      const { stdout: version } = await run(promtool, ["--version"]);
      console.log(version.split("\n")[0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a healthy system fires nothing, always up or scaled to zero between pings", async () => {
    await promtoolTest([
      { name: "healthy, every function up", series: system({ hours: 8 }), expect: silent("8h") },
      {
        name: "healthy, scaled to zero",
        series: system({ hours: 8, scaleToZero: true }),
        expect: [...silent("7h30m"), ...silent("7h1m")],
      },
    ]);
  });

  it("the CA: rotation overdue, expiring, an expired CA still trusted", async () => {
    const fns = (alert: string, at: string) => ({
      at,
      alert,
      firing: SIGNERS.map((fn) => ({ namespace, function: fn })),
    });
    await promtoolTest([
      {
        name: "394 days left: not yet overdue",
        series: system({ hours: 4, caNotAfter: 394 * D }),
        expect: silent("3h"),
      },
      {
        name: "392 days left: overdue, not yet expiring",
        series: system({ hours: 4, caNotAfter: 392 * D, scaleToZero: true }),
        expect: [
          { at: "3h1m", alert: "ServiceCARotationOverdue", firing: [{ namespace }] },
          { at: "3h1m", alert: "ServiceCAExpiringSoon" },
          { at: "30m", alert: "ServiceCARotationOverdue" }, // pending for its first hour
        ],
      },
      {
        name: "29 days left",
        series: system({ hours: 2, caNotAfter: 29 * D }),
        expect: [
          { at: "1h", alert: "ServiceCAExpiringSoon", firing: [{ namespace }] },
          { at: "5m", alert: "ServiceCAExpiringSoon" },
        ],
      },
      {
        name: "the previous CA expired at 1h and is still trusted",
        series: system({ hours: 4, oldestTrustedNotAfter: 1 * H }),
        expect: [
          fns("ServiceCAPreviousCATrustedPastGrace", "3h"),
          { at: "1h30m", alert: "ServiceCAPreviousCATrustedPastGrace" },
        ],
      },
    ]);
  });

  it("serving certificates: renewal failing or stalled, Services given up on", async () => {
    await promtoolTest([
      {
        name: "scans fail on two Services",
        series: system({ hours: 6, scaleToZero: true, lastScan: { failed: 2 } }),
        expect: [
          { at: "5h1m", alert: "ServiceCAServingCertRenewalFailing", firing: [{ namespace }] },
          { at: "2h", alert: "ServiceCAServingCertRenewalFailing" },
        ],
      },
      {
        name: "no scan after the first hour",
        series: system({ hours: 6, scansIn: (h) => h === 0 }),
        expect: [
          { at: "5h", alert: "ServiceCAServingCertRenewalStalled", firing: [{ namespace }] },
          { at: "3h", alert: "ServiceCAServingCertRenewalStalled" },
        ],
      },
      {
        name: "expiry-scan never seen",
        series: system({ hours: 2, absent: ["expiry-scan"] }),
        expect: [{ at: "1h", alert: "ServiceCAServingCertRenewalStalled", firing: [{}] }],
      },
      {
        name: "a foreign Secret in the way, and a Service given up on",
        series: system({ hours: 4, scaleToZero: true, lastScan: { "foreign-secret": 1, "gave-up": 2 } }),
        expect: [
          {
            at: "2h1m",
            alert: "ServiceCAServicesGivenUp",
            firing: [
              { namespace, outcome: "foreign-secret" },
              { namespace, outcome: "gave-up" },
            ],
          },
          { at: "30m", alert: "ServiceCAServicesGivenUp" },
        ],
      },
    ]);
  });

  it("functions: sustained 5xx, a function down, no issuer at all", async () => {
    await promtoolTest([
      {
        name: "issue-serving-cert answers 1 in 6 with a 503",
        series: system({ hours: 1, failing: { "issue-serving-cert": 1 } }),
        expect: [
          {
            at: "40m",
            alert: "ServiceCAFunctionFailing",
            firing: [{ namespace, function: "issue-serving-cert" }],
          },
          { at: "10m", alert: "ServiceCAFunctionFailing" }, // pending for its first 15 minutes
        ],
      },
      {
        name: "inject-crd fails its scrapes",
        series: system({ hours: 1, down: ["inject-crd"] }),
        expect: [
          {
            at: "10m",
            alert: "ServiceCAFunctionDown",
            firing: [{ namespace, job, function: "inject-crd", pod: "inject-crd-00001-deployment-abc12" }],
          },
          { at: "3m", alert: "ServiceCAFunctionDown" },
          { at: "10m", alert: "ServiceCAIssuerAbsent" },
        ],
      },
      {
        name: "no issue-serving-cert",
        series: system({ hours: 1, absent: ["issue-serving-cert"] }),
        expect: [
          { at: "15m", alert: "ServiceCAIssuerAbsent", firing: [{}] },
          { at: "15m", alert: "ServiceCAFunctionDown" },
        ],
      },
    ]);
  });
});
