// Bad input at every function's HTTP endpoint: generated cases (fast-check) against each function running as a
// real process under its own ServiceAccount. Every case must get a 4xx with a JSON error that says what is
// wrong, no process may crash, and the API server's audit log must show no write by any function.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { request, Agent } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { startFunction, type RunningFunction } from "../../dev/local-system/function-hosts.ts";
import { functionKubeconfig } from "../support/identities.ts";
import {
  auditMark,
  auditSince,
  describeWrite,
  reviewsBy,
  tokenIdentity,
  writesBy,
  type Identity,
} from "../../dev/audit.ts";
import { functionNames, functionsDir } from "../../shared/host/functions.ts";
import { sourceToken } from "../../dev/events.ts";
import { runtimeConfigShape } from "../../shared/runtime/config.ts";

const RUNS = 1000;
// Short, so the slow-request cases below take seconds; nothing a valid case would do comes near it.
const REQUEST_TIMEOUT_SECONDS = 2;
/** The runtime's default body limit; a function may set its own (`bodyLimitOf`). */
const BODY_LIMIT = runtimeConfigShape.BODY_LIMIT_BYTES.parse(undefined);

/** A function's own default BODY_LIMIT_BYTES (inject-configmap's events carry whole ConfigMaps), or the runtime's. */
async function bodyLimitOf(name: string): Promise<number> {
  const def = (await import(join(functionsDir, name, "index.ts"))).default as {
    config: Record<string, { parse(v: unknown): unknown }>;
  };
  return Number((def.config.BODY_LIMIT_BYTES ?? runtimeConfigShape.BODY_LIMIT_BYTES).parse(undefined));
}
const SYSTEM_NAMESPACE = "service-ca";

interface Kind {
  apiVersion: string;
  kind: string;
}
interface Running extends RunningFunction {
  identity: Identity;
  /** What its ApiServerSources (infra/, as applied to the cluster) send it. */
  kinds: Kind[];
  /** The largest body it reads (its BODY_LIMIT_BYTES default). */
  bodyLimit: number;
}

let cluster: TestCluster;
const fns = new Map<string, Running>();
const agent = new Agent({ keepAlive: true, maxSockets: 2 });
/** Each function's source token, by URL: every case is sent as its source would, so the content is what is bad. */
const senderTokens = new Map<string, string>();
let auditStart = 0;
let startedAll: Promise<void> = Promise.resolve();

before(async () => {
  cluster = await testCluster();
  const sources = (await cluster.kc.makeApiClient(k8s.CustomObjectsApi).listNamespacedCustomObject({
    group: "sources.knative.dev",
    version: "v1",
    namespace: SYSTEM_NAMESPACE,
    plural: "apiserversources",
  })) as { items: Array<{ spec: { resources: Kind[]; sink: { ref: { name: string } } } }> };
  const logs = await mkdtemp(join(tmpdir(), "bad-input-"));
  const names = functionNames();
  let next = 0;
  let failed = false;
  const startOne = async (name: string) => {
    const kubeconfig = await functionKubeconfig(cluster, name);
    const identity = await tokenIdentity(kubeconfig);
    const fn = await startFunction(name, {
      kubeconfig,
      logFile: join(logs, `${name}.log`),
      env: { LOG_LEVEL: "warn", REQUEST_TIMEOUT_SECONDS: String(REQUEST_TIMEOUT_SECONDS) },
    });
    const kinds = sources.items
      .filter((s) => s.spec.sink.ref.name === name)
      .flatMap((s) => s.spec.resources.map((r) => ({ apiVersion: r.apiVersion, kind: r.kind })));
    senderTokens.set(fn.url, await sourceToken(cluster.kc, name));
    fns.set(name, { ...fn, identity, kinds, bodyLimit: await bodyLimitOf(name) });
  };
  // Three at a time: nine processes compiling TypeScript at once on a busy 2-core machine can miss the
  // readiness deadline. After a failure the others stop taking work, and after() waits for those in flight.
  const workers = [0, 1, 2].map(async () => {
    while (!failed && next < names.length) {
      try {
        await startOne(names[next++]!);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  });
  startedAll = Promise.allSettled(workers).then(() => {});
  await Promise.all(workers);
  auditStart = await auditMark(cluster);
});
after(async () => {
  await startedAll;
  agent.destroy();
  await Promise.all([...fns.values()].map((f) => f.process.stop()));
});

// ---- The HTTP client: keep-alive, raw bytes, any header a broker or an attacker could send. ----

interface Case {
  category: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  /** Sent as two chunks with Transfer-Encoding: chunked instead of one body with Content-Length. */
  chunked: boolean;
  expect: number;
}
interface Answer {
  status: number;
  contentType: string;
  text: string;
}

function send(url: string, c: Case): Promise<Answer> {
  const { hostname, port } = new URL(url);
  const headers = { authorization: `Bearer ${senderTokens.get(url)}`, ...c.headers };
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, path: c.path, method: c.method, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (d: Buffer) => chunks.push(d));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          contentType: String(res.headers["content-type"] ?? ""),
          text: Buffer.concat(chunks).toString("utf8"),
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    // Framing is always explicit: a GET whose body Node sent unframed would be read as the next request.
    if (c.chunked && c.body.length > 1) {
      req.setHeader("transfer-encoding", "chunked");
      const half = c.body.length >> 1;
      req.write(c.body.subarray(0, half));
      req.end(c.body.subarray(half));
    } else {
      req.setHeader("content-length", c.body.length);
      req.end(c.body);
    }
  });
}

const errorKinds = [
  "malformed",
  "unauthenticated",
  "forbidden",
  "notFound",
  "conflict",
  "transient",
  "internal",
];

/** The contract for every bad request: the expected 4xx, JSON, `{error: {kind, message}}` that says something. */
function checkAnswer(c: Case, a: Answer) {
  const where = `${c.category}: ${c.method} ${c.path} ${JSON.stringify(c.headers).slice(0, 300)} ${c.body.subarray(0, 2000).toString("utf8")}`;
  assert.equal(a.status, c.expect, `${where}\n→ ${a.status} ${a.text.slice(0, 500)}`);
  assert.match(a.contentType, /^application\/json/, where);
  const json = JSON.parse(a.text) as { error?: { kind?: unknown; message?: unknown } };
  assert.ok(errorKinds.includes(String(json.error?.kind)), `${where}\n→ ${a.text.slice(0, 300)}`);
  assert.equal(typeof json.error?.message, "string", where);
  assert.ok((json.error!.message as string).length >= 10, `a message that says what is wrong: ${a.text}`);
}

// ---- Valid events (the base every mutation starts from) and their two encodings. ----

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const isName = (s: unknown) => typeof s === "string" && s.length <= 253 && DNS_SUBDOMAIN.test(s);
const isNamespace = (s: unknown) =>
  s === undefined || (typeof s === "string" && s.length <= 63 && DNS_LABEL.test(s));

const acceptedTypes = new Set([
  "dev.knative.sources.ping",
  ...["ref", "resource"].flatMap((m) =>
    ["add", "update", "delete"].map((a) => `dev.knative.apiserver.${m}.${a}`),
  ),
]);
const clusterScoped = new Set([
  "APIService",
  "CustomResourceDefinition",
  "MutatingWebhookConfiguration",
  "ValidatingWebhookConfiguration",
  "CertificateSigningRequest",
  "Namespace",
]);

interface BaseEvent {
  mode: "ref" | "resource";
  attrs: Record<string, string>;
  /** Knative's extension attributes (binary-mode headers ce-kind, ce-name, ...). */
  extensions: Record<string, string>;
  data: Record<string, unknown>;
}

const dnsLabel = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$/);

const baseEvent = (kinds: Kind[]): fc.Arbitrary<BaseEvent> =>
  fc
    .record({
      kind: fc.constantFrom(...kinds),
      mode: fc.constantFrom("ref" as const, "resource" as const),
      action: fc.constantFrom("add", "update", "delete"),
      namespace: dnsLabel,
      name: dnsLabel,
      id: fc.uuid(),
    })
    .map(({ kind, mode, action, namespace, name, id }) => {
      const ns = clusterScoped.has(kind.kind) ? undefined : `fuzz-${namespace}`;
      const data =
        mode === "ref"
          ? { kind: kind.kind, ...(ns ? { namespace: ns } : {}), name, apiVersion: kind.apiVersion }
          : {
              apiVersion: kind.apiVersion,
              kind: kind.kind,
              metadata: { name, ...(ns ? { namespace: ns } : {}), uid: id, resourceVersion: "1" },
            };
      return {
        mode,
        attrs: {
          specversion: "1.0",
          id,
          source: "https://10.96.0.1:443",
          type: `dev.knative.apiserver.${mode}.${action}`,
          subject: `/apis/${kind.apiVersion}/namespaces/${ns ?? ""}/${kind.kind.toLowerCase()}s/${name}`,
        },
        extensions: {
          kind: kind.kind,
          name,
          apiversion: kind.apiVersion,
          ...(ns ? { namespace: ns } : {}),
        },
        data,
      };
    });

const json = (v: unknown) => Buffer.from(JSON.stringify(v) ?? "", "utf8");

function binary(ev: BaseEvent, data: Buffer = json(ev.data)): Pick<Case, "headers" | "body"> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  for (const [k, v] of Object.entries({ ...ev.attrs, ...ev.extensions })) headers[`ce-${k}`] = v;
  return { headers, body: data };
}

function structured(envelope: Record<string, unknown>): Pick<Case, "headers" | "body"> {
  return { headers: { "content-type": "application/cloudevents+json" }, body: json(envelope) };
}

/** The structured-mode envelope; `data` undefined leaves the member out (no default: undefined is a test case). */
const envelopeOf = (ev: BaseEvent, data: unknown) => ({
  ...ev.attrs,
  ...ev.extensions,
  datacontenttype: "application/json",
  data,
});

/** Either encoding of an event whose data is `data`. */
const encoded = (ev: BaseEvent, data: unknown, asStructured: boolean) =>
  asStructured ? structured(envelopeOf(ev, data)) : binary(ev, json(data));

const post = (category: string, parts: Pick<Case, "headers" | "body">, expect = 400): Case =>
  printable({ category, method: "POST", path: "/", chunked: false, expect, ...parts });

/** How fast-check prints a case it reports: short, even for a body of a megabyte. */
function printable(c: Case): Case {
  return Object.defineProperty(c, fc.toStringMethod, {
    value: () =>
      `${c.category}: ${c.method} ${c.path}${c.chunked ? " (chunked)" : ""} ${JSON.stringify(c.headers).slice(0, 400)} body(${c.body.length} bytes)=${JSON.stringify(c.body.subarray(0, 300).toString("utf8"))}`,
  });
}

// ---- What can be wrong. Each generator makes only invalid requests (filters drop accidental valid ones). ----

const isJson = (s: string) => {
  try {
    JSON.parse(s);
    return true;
  } catch {
    return false;
  }
};

const oddPieces = [
  "é",
  "ß",
  "İ",
  "ı",
  "К",
  "а", // Cyrillic a
  "\u200b",
  "\u200d",
  "\u202e",
  "\ufeff",
  "\u0000",
  "\u0301",
  "\ud800",
  "\n",
  "\t",
  " ",
  "/",
  "\\",
  "..",
  "%2F",
  "😀",
  "🏳️‍🌈",
  "Ａ",
  "A",
  "_",
  ":",
  "@",
  "#",
  "?",
  "*",
  "'",
  '"',
  "<script>",
];

/** Names no Kubernetes object can have: odd Unicode, upper case, separators, wrong length, bad ends. */
const oddName = fc
  .oneof(
    fc.tuple(dnsLabel, fc.constantFrom(...oddPieces), dnsLabel).map(([a, odd, b]) => `${a}${odd}${b}`),
    fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
    fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
    fc.integer({ min: 254, max: 400 }).map((n) => "a".repeat(n)),
    dnsLabel.map((s) => `-${s}`),
    dnsLabel.map((s) => `${s}-`),
    dnsLabel.map((s) => `${s}.`),
    fc.constantFrom("", ".", "..", "a..b"),
  )
  .filter((s) => !isName(s));
const oddNamespace = fc
  .oneof(
    oddName,
    fc.integer({ min: 64, max: 100 }).map((n) => "n".repeat(n)),
    dnsLabel.map((s) => `${s}.x`),
  )
  .filter((s) => !isNamespace(s));

const notJson = fc
  .oneof(
    fc.string({ maxLength: 200 }),
    fc.string({ unit: "grapheme", maxLength: 200 }),
    fc.constantFrom(
      "{",
      "[1,2",
      '{"a":}',
      "NaN",
      "undefined",
      "{'a':1}",
      '{"a":1,}',
      "\ufeff{}",
      '{"a":"\u0000"',
      "]",
      "nul",
    ),
    fc.jsonValue().map((v) => JSON.stringify(v) + "}"),
  )
  .filter((s) => !isJson(s));

const truncated = (whole: string) =>
  fc
    .integer({ min: 0, max: Math.max(0, whole.length - 1) })
    .map((n) => whole.slice(0, n))
    .filter((s) => !isJson(s));

const notAJsonType = fc.constantFrom(
  "text/plain",
  "text/html",
  "application/xml",
  "application/octet-stream",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "image/png",
  "application/x-fuzz",
);

const nonString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown) => typeof v === "string" && v.length > 0;
/** An object a function must accept: `names` holds a valid name and namespace, `d` a kind and an apiVersion. */
const validObject = (d: Record<string, unknown>, names: unknown) =>
  isRecord(names) &&
  isName(names.name) &&
  isNamespace(names.namespace) &&
  nonEmpty(d.kind) &&
  nonEmpty(d.apiVersion);
/** Reference mode: the names stand beside kind and apiVersion. */
const validRef = (d: unknown) => isRecord(d) && validObject(d, d);
/** Resource mode: the names stand in metadata. */
const validResource = (d: unknown) => isRecord(d) && validObject(d, d.metadata);

const without = (o: Record<string, unknown>, key: string) => {
  const c = { ...o };
  delete c[key];
  return c;
};

/** The data of a Reference-mode event, made wrong in one way. */
const wrongRef = (ev: BaseEvent) =>
  fc
    .oneof(
      fc.constantFrom(null, 42, "a string", true, [], {}),
      fc.constant([ev.data]),
      fc.constantFrom("name", "kind", "apiVersion").map((k) => without(ev.data, k)),
      fc.tuple(fc.constantFrom("name", "kind", "apiVersion", "namespace"), nonString).map(([k, v]) => ({
        ...ev.data,
        [k]: v,
      })),
      fc.constantFrom("kind", "apiVersion").map((k) => ({ ...ev.data, [k]: "" })),
      // the Resource-mode shape under a Reference-mode type
      fc.constant({ apiVersion: ev.data.apiVersion, kind: ev.data.kind, metadata: { name: "x" } }),
      fc.anything(),
    )
    .filter((d) => !validRef(d));

/** The data of a Resource-mode event, made wrong in one way. */
const wrongResource = (ev: BaseEvent) =>
  fc
    .oneof(
      fc.constantFrom(null, 42, "a string", true, [], {}),
      fc.constant([ev.data]),
      fc.constantFrom("metadata", "kind", "apiVersion").map((k) => without(ev.data, k)),
      fc.tuple(fc.constantFrom("metadata", "kind", "apiVersion"), nonString).map(([k, v]) => ({
        ...ev.data,
        [k]: v,
      })),
      nonString.map((v) => ({ ...ev.data, metadata: { ...(ev.data.metadata as object), name: v } })),
      fc.constant({ ...ev.data, metadata: without(ev.data.metadata as Record<string, unknown>, "name") }),
      // the Reference-mode shape under a Resource-mode type
      fc.constant({ apiVersion: ev.data.apiVersion, kind: ev.data.kind, name: "x", namespace: "y" }),
      fc.anything(),
    )
    .filter((d) => !validResource(d));

const withName = (ev: BaseEvent, field: "name" | "namespace", value: string) =>
  ev.mode === "ref"
    ? { ...ev.data, [field]: value }
    : { ...ev.data, metadata: { ...(ev.data.metadata as object), [field]: value } };

const foreignKinds = fc.oneof(
  fc.constantFrom(
    "Pod",
    "Deployment",
    "ReplicaSet",
    "Node",
    "Lease",
    "Ingress",
    "ClusterRole",
    "PersistentVolumeClaim",
    "Job",
  ),
  fc.stringMatching(/^[A-Z][a-zA-Z]{0,20}$/).map((k) => `Fuzz${k}`),
);

const attributeNames = ["specversion", "id", "source", "type"] as const;
const versionLike = ["0.3", "1", "2.0", "1.0.0", "v1.0"];

/** Every way a request to a function's CloudEvent endpoint can be wrong, around a valid event of its kinds. */
function badCloudEvent(kinds: Kind[], bodyLimit: number): fc.Arbitrary<Case> {
  const base = baseEvent(kinds);
  const asStructured = fc.boolean();
  return fc.oneof(
    // Not a CloudEvent at all.
    fc
      .tuple(base, fc.option(fc.oneof(notAJsonType, fc.constant("application/json"))))
      .map(([ev, type]) =>
        post("not a CloudEvent", { headers: type ? { "content-type": type } : {}, body: json(ev.data) }),
      ),
    // Malformed JSON, in the data (binary mode) or the whole envelope (structured mode).
    fc
      .tuple(base, asStructured)
      .chain(([ev, s]) =>
        fc
          .oneof(notJson, truncated(s ? JSON.stringify(envelopeOf(ev, ev.data)) : JSON.stringify(ev.data)))
          .map((text) =>
            post(
              "malformed JSON",
              s
                ? { headers: { "content-type": "application/cloudevents+json" }, body: Buffer.from(text) }
                : binary(ev, Buffer.from(text)),
            ),
          ),
      ),
    // A valid event whose body is declared as something other than JSON.
    fc.tuple(base, notAJsonType).map(([ev, type]) => {
      const b = binary(ev);
      return post("wrong content type", { ...b, headers: { ...b.headers, "content-type": type } });
    }),
    // Required attributes missing or wrong, binary mode (headers).
    fc
      .tuple(
        base,
        fc.constantFrom(...attributeNames),
        fc.oneof(
          fc.constant(undefined),
          fc.constant(""),
          fc.string({ minLength: 1025, maxLength: 1100 }).map((s) => s.replace(/[^\x21-\x7e]/g, "x")),
          fc.constantFrom(...versionLike),
        ),
      )
      // a version-like string is a fine id or source
      .filter(([, attr, v]) => !(versionLike.includes(v as string) && (attr === "id" || attr === "source")))
      .map(([ev, attr, value]) => {
        const b = binary(ev);
        const headers = { ...b.headers };
        if (value === undefined) delete headers[`ce-${attr}`];
        else headers[`ce-${attr}`] = value;
        return post(`binary: ${value === undefined ? "missing" : "wrong"} ${attr}`, { ...b, headers });
      }),
    // Required attributes missing or wrong, structured mode (JSON members of any type).
    fc
      .tuple(
        base,
        fc.constantFrom(...attributeNames),
        fc.oneof(
          fc.constant(undefined),
          fc.constant(""),
          nonString,
          fc.string({ minLength: 1025, maxLength: 1100 }),
          fc.constantFrom(...versionLike, " 1.0", "1.0 "),
        ),
      )
      // any string of 1 to 1024 characters is a fine id, source or (unknown, tested below) type
      .filter(([, attr, v]) => attr === "specversion" || typeof v !== "string" || v === "" || v.length > 1024)
      .map(([ev, attr, value]) => {
        const env: Record<string, unknown> = envelopeOf(ev, ev.data);
        if (value === undefined) delete env[attr];
        else env[attr] = value;
        return post(`structured: ${value === undefined ? "missing" : "wrong"} ${attr}`, structured(env));
      }),
    // Event types no function accepts (near misses included).
    fc
      .tuple(
        base,
        fc.oneof(
          fc.stringMatching(/^[a-z]{1,10}(\.[a-z]{1,10}){0,5}$/),
          fc.constantFrom(
            "dev.knative.apiserver.ref.ADD",
            "dev.knative.apiserver.ref.patch",
            "dev.knative.apiserver.reference.add",
            "dev.knative.apiserver.resource",
            "dev.knative.sources.ping.v2",
            "dev.knative.sources.Ping",
            "com.example.unknown",
            "dev.knative.apiserver.ref.add\u0000",
            "dev.knative.apiserver.ref.add ",
          ),
        ),
        asStructured,
      )
      // a header value cannot hold NUL, and HTTP trims the spaces around one
      .filter(([, type, s]) =>
        s ? !acceptedTypes.has(type) : !acceptedTypes.has(type.trim()) && !type.includes("\u0000"),
      )
      .map(([ev, type, s]) => {
        const retyped = { ...ev, attrs: { ...ev.attrs, type } };
        return post(
          "unknown event type",
          s ? structured(envelopeOf(retyped, retyped.data)) : binary(retyped),
        );
      }),
    // Data of the wrong shape for the event's ApiServerSource mode.
    fc
      .tuple(base, asStructured)
      .chain(([ev, s]) =>
        (ev.mode === "ref" ? wrongRef(ev) : wrongResource(ev)).map((data) =>
          post(`wrong data shape (${ev.mode} mode)`, encoded(ev, data, s)),
        ),
      ),
    // Names and namespaces no object can have.
    fc
      .tuple(base, fc.constantFrom("name" as const, "namespace" as const), asStructured)
      .chain(([ev, field, s]) =>
        (field === "name" ? oddName : oddNamespace).map((v) =>
          post(`odd ${field} (${ev.mode} mode)`, encoded(ev, withName(ev, field, v), s)),
        ),
      ),
    // Objects of a kind the function does not handle, or of its kind in another API group/version.
    fc
      .tuple(
        base,
        fc.oneof(
          foreignKinds.map((kind) => ({ kind, apiVersion: undefined as string | undefined })),
          fc
            .constantFrom("v2", "apps/v1", "fuzz.example.com/v1", "v1beta1", "")
            .map((apiVersion) => ({ kind: undefined as string | undefined, apiVersion })),
          fc
            .constantFrom("service", "SERVICE", "secret", "Configmap", "configmap", "apiservice")
            .map((kind) => ({ kind, apiVersion: undefined as string | undefined })),
        ),
        asStructured,
      )
      .filter(([ev, wrong]) => wrong.apiVersion !== ev.data.apiVersion)
      .map(([ev, wrong, s]) => {
        const data = {
          ...ev.data,
          ...(wrong.kind !== undefined ? { kind: wrong.kind } : {}),
          ...(wrong.apiVersion !== undefined ? { apiVersion: wrong.apiVersion } : {}),
        };
        return post(`wrong kind (${ev.mode} mode)`, encoded(ev, data, s));
      }),
    // Bodies over the limit, with and without Content-Length.
    fc.tuple(base, asStructured, fc.nat(64 * 1024), fc.boolean()).map(([ev, s, extra, chunked]) => {
      const pad = "a".repeat(bodyLimit + 1 + extra);
      const parts = s
        ? structured(envelopeOf(ev, { ...ev.data, pad }))
        : binary(ev, json({ ...ev.data, pad }));
      return { ...post("body over the limit", parts, 413), chunked };
    }),
    // A Content-Encoding the body does not have, or one nobody supports.
    fc.tuple(base, fc.constantFrom("gzip", "deflate", "br", "x-fuzz", "compress")).map(([ev, encoding]) => {
      const b = binary(ev);
      const known = encoding === "gzip" || encoding === "deflate" || encoding === "br";
      return post(
        `content-encoding ${known ? "not matching" : "unsupported"}`,
        { ...b, headers: { ...b.headers, "content-encoding": encoding } },
        known ? 400 : 415,
      );
    }),
    // Batches, which Knative's sources never send to a function.
    base.map((ev) =>
      post("batch", {
        headers: { "content-type": "application/cloudevents-batch+json" },
        body: json([envelopeOf(ev, ev.data)]),
      }),
    ),
    // Other methods on /, and paths that do not exist.
    fc
      .tuple(base, fc.constantFrom("GET", "PUT", "DELETE", "PATCH"))
      .map(([ev, method]) => printable({ ...post("wrong method", binary(ev), 405), method })),
    fc
      .tuple(base, fc.string({ minLength: 1, maxLength: 30 }), fc.constantFrom("", "%ZZ", "%00", "..%2f"))
      .map(([ev, segment, odd]) =>
        printable({
          ...post("no such path", binary(ev), 404),
          path: `/x-${encodeURIComponent(segment)}${odd}`,
        }),
      ),
  );
}

/** rotate-ca's admin endpoint: wrong bodies (400), right bodies with no usable credentials (401), huge (413). */
function badRotateRequest(): fc.Arbitrary<Case> {
  const reason = fc
    .string({ unit: "grapheme", minLength: 1, maxLength: 120 })
    .filter((s) => s.trim().length >= 1 && s.trim().length <= 256);
  const goodBody = fc
    .record(
      {
        reason,
        mode: fc.constantFrom("overlap", "replace"),
        dryRun: fc.boolean(),
      },
      { requiredKeys: ["reason"] },
    )
    .map((b) => JSON.stringify(b));
  const goodReason = { reason: "drill" };
  const badBody = fc.oneof(
    notJson.filter((s) => s.trim() !== ""),
    fc.constant("{}"),
    fc
      .oneof(
        fc.constantFrom("", "   ", "\n\t"),
        fc.integer({ min: 257, max: 400 }).map((n) => "r".repeat(n)),
        nonString,
      )
      .map((r) => JSON.stringify({ reason: r })),
    fc
      .oneof(
        fc.string().filter((m) => m !== "overlap" && m !== "replace"),
        nonString,
      )
      .map((mode) => JSON.stringify({ ...goodReason, mode })),
    fc
      .oneof(fc.constantFrom("true", "false", 1, 0, null), fc.string())
      .map((dryRun) => JSON.stringify({ ...goodReason, dryRun })),
    fc
      .tuple(
        fc.string({ minLength: 1, maxLength: 20 }).filter((k) => !["reason", "mode", "dryRun"].includes(k)),
        fc.jsonValue(),
      )
      .map(([k, v]) => `{"reason":"drill",${JSON.stringify(k)}:${JSON.stringify(v) ?? "null"}}`),
    fc
      .oneof(fc.array(fc.jsonValue(), { maxLength: 3 }), fc.integer(), fc.string(), fc.constant(null))
      .map((v) => JSON.stringify(v)),
  );
  const token = fc.stringMatching(/^[A-Za-z0-9._-]{1,120}$/);
  const authorization = fc.oneof(
    fc.constant(undefined),
    fc.constantFrom("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer a b", "Token abc", "bearer"),
    token.map((t) => `Bearer ${t}`),
  );
  const contentType = fc.option(fc.constantFrom("application/json", "text/plain", "application/xml"));
  const request = (category: string, body: string | Buffer, expect: number) =>
    fc.tuple(authorization, contentType).map(([auth, type]): Case => ({
      category,
      method: "POST",
      path: "/rotate",
      headers: { ...(type ? { "content-type": type } : {}), ...(auth ? { authorization: auth } : {}) },
      body: Buffer.from(body),
      chunked: false,
      expect,
    }));
  return fc.oneof(
    { weight: 6, arbitrary: badBody.chain((b) => request("invalid body", b, 400)) },
    { weight: 3, arbitrary: goodBody.chain((b) => request("valid body, no usable token", b, 401)) },
    {
      weight: 1,
      arbitrary: fc
        .nat(64 * 1024)
        .chain((n) =>
          request("body over the limit", JSON.stringify({ reason: "r".repeat(BODY_LIMIT + n) }), 413),
        ),
    },
  );
}

// ---- The runs. ----

const figures: string[] = [];

async function alive(fn: Running) {
  assert.ok(fn.process.running(), `${fn.name} is still running`);
  const res = await fetch(`${fn.url}/health/liveness`);
  assert.equal(res.status, 200, `${fn.name} /health/liveness`);
}

async function hammer(fn: Running, endpoint: string, arb: fc.Arbitrary<Case>) {
  const categories = new Map<string, number>();
  const statuses = new Map<number, number>();
  let cases = 0;
  const started = performance.now();
  await fc.assert(
    fc.asyncProperty(arb, async (c) => {
      const answer = await send(fn.url, c);
      checkAnswer(c, answer);
      cases++;
      categories.set(c.category, (categories.get(c.category) ?? 0) + 1);
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
    }),
    { numRuns: RUNS },
  );
  await alive(fn);
  const secs = ((performance.now() - started) / 1000).toFixed(1);
  const byStatus = [...statuses].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`);
  const line = `reliability: bad-input ${fn.name} ${endpoint}: ${cases} cases in ${secs} s, ${categories.size} kinds of wrong, answers ${byStatus.join(" ")}, process alive`;
  console.log(line);
  console.log(
    `reliability:   ${[...categories]
      .sort()
      .map(([c, n]) => `${c} ${n}`)
      .join("; ")}`,
  );
  figures.push(line);
}

describe("bad input at every function's HTTP endpoint", () => {
  it("has every function of the repository running under its own ServiceAccount", () => {
    assert.deepEqual([...fns.keys()].sort(), functionNames());
    for (const fn of fns.values())
      assert.match(
        fn.identity.username,
        new RegExp(`^system:serviceaccount:${SYSTEM_NAMESPACE}:${fn.name}$`),
      );
  });

  for (const name of functionNames()) {
    it(`${name}: ${RUNS} generated bad CloudEvent requests → 4xx with a JSON error each`, async () => {
      const fn = fns.get(name)!;
      const kinds = fn.kinds.length > 0 ? fn.kinds : [{ apiVersion: "v1", kind: "Service" }];
      await hammer(fn, "POST /", badCloudEvent(kinds, fn.bodyLimit));
    });
  }

  it(`rotate-ca: ${RUNS} generated bad admin requests to POST /rotate → 400/401/413 with a JSON error each`, async () => {
    await hammer(fns.get("rotate-ca")!, "POST /rotate", badRotateRequest());
  });

  it("the body limit is the configured one: exactly the limit is read, one byte more is 413", async () => {
    const headers = {
      "content-type": "application/json",
      "ce-specversion": "1.0",
      "ce-id": randomUUID(),
      "ce-source": "s",
      "ce-type": "dev.knative.apiserver.ref.add",
    };
    // The runtime's default, and inject-configmap's own (its events carry whole ConfigMaps).
    for (const name of ["issue-serving-cert", "inject-configmap"]) {
      const fn = fns.get(name)!;
      const limit = fn.bodyLimit;
      const at = await send(fn.url, post("at the limit", { headers, body: Buffer.alloc(limit, 0x20) }));
      assert.equal(at.status, 400, `${name}: read and judged, not refused for its size`);
      const over = await send(fn.url, post("over", { headers, body: Buffer.alloc(limit + 1, 0x20) }, 413));
      assert.equal(over.status, 413, name);
      assert.match(JSON.parse(over.text).error.message, new RegExp(`larger than ${limit} bytes`));
      console.log(
        `reliability: bad-input body limit of ${name} ${limit} bytes: ${limit} read (400), +1 refused (413)`,
      );
    }
    assert.equal(fns.get("issue-serving-cert")!.bodyLimit, BODY_LIMIT);
    assert.equal(fns.get("inject-configmap")!.bodyLimit, 4 * 1024 * 1024);
  });

  it("a request whose headers or body trickle in is cut off (408) after the request timeout, everywhere", async () => {
    const started = performance.now();
    const results = await Promise.all(
      [...fns.values()].flatMap((fn) => [slowRequest(fn.url, "body"), slowRequest(fn.url, "headers")]),
    );
    const budget = (REQUEST_TIMEOUT_SECONDS + 5 + 3) * 1000;
    for (const r of results) {
      assert.match(r.answer, /^HTTP\/1\.1 408 /, `${r.url} (${r.part}) answered ${JSON.stringify(r.answer)}`);
      assert.ok(
        r.closedAfterMs >= REQUEST_TIMEOUT_SECONDS * 1000,
        `not before the timeout: ${r.closedAfterMs}`,
      );
      assert.ok(r.closedAfterMs <= budget, `${r.url} (${r.part}) held for ${r.closedAfterMs} ms`);
    }
    for (const fn of fns.values()) await alive(fn);
    const worst = Math.max(...results.map((r) => r.closedAfterMs));
    console.log(
      `reliability: bad-input slow requests: ${results.length} (body and headers, ${fns.size} functions) cut off with 408 after at most ${worst} ms (REQUEST_TIMEOUT_SECONDS=${REQUEST_TIMEOUT_SECONDS}) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  });

  it("the API server saw no write from any function, and every process is alive", async () => {
    const events = await auditSince(cluster, auditStart);
    const wrote: string[] = [];
    let reviews = 0;
    for (const fn of fns.values()) {
      await alive(fn);
      wrote.push(...writesBy(events, fn.identity).map((e) => `${fn.name}: ${describeWrite(e)}`));
      reviews += reviewsBy(events, fn.identity).length;
    }
    assert.deepEqual(wrote, []);
    console.log(
      `reliability: bad-input audit log: ${events.length} requests audited while fuzzing, 0 writes by the ${fns.size} functions' ServiceAccounts (${reviews} TokenReviews/SubjectAccessReviews: of the senders' tokens, and rotate-ca's for bearer tokens; no state)`,
    );
  });

  it("control: each function accepts the unmutated event of each kind it is sent, so the rejections came from what was wrong", async () => {
    const absent = `bad-input-absent-${randomUUID().slice(0, 6)}`;
    let controls = 0;
    for (const fn of fns.values()) {
      // Functions without an ApiServerSource take pings only, and a ping does real work: no control for them.
      for (const kind of fn.kinds) {
        const ev: BaseEvent = {
          mode: "ref",
          attrs: {
            specversion: "1.0",
            id: randomUUID(),
            source: "s",
            type: "dev.knative.apiserver.ref.update",
          },
          extensions: {},
          data: {
            apiVersion: kind.apiVersion,
            kind: kind.kind,
            ...(clusterScoped.has(kind.kind) ? { name: absent } : { namespace: absent, name: "x" }),
          },
        };
        const res = await send(fn.url, post("control", binary(ev)));
        const errorKind = res.status >= 400 ? JSON.parse(res.text).error?.kind : undefined;
        assert.notEqual(errorKind, "malformed", `${fn.name} ${kind.kind}: ${res.status} ${res.text}`);
        controls++;
      }
    }
    console.log(
      `reliability: bad-input controls: ${controls} unmutated events (one per function and kind) accepted`,
    );
  });
});

/** Opens a request and sends its body (or its headers) one byte every 300 ms; reports what came back. */
function slowRequest(url: string, part: "body" | "headers") {
  const { hostname, port } = new URL(url);
  const started = performance.now();
  return new Promise<{ url: string; part: string; answer: string; closedAfterMs: number }>((resolve) => {
    let answer = "";
    const socket = connect(Number(port), hostname, () => {
      socket.write(
        part === "body"
          ? `POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${senderTokens.get(url)}\r\nContent-Type: application/json\r\nce-specversion: 1.0\r\nContent-Length: 100000\r\n\r\n{`
          : "POST / HTTP/1.1\r\nHost: x\r\n",
      );
    });
    const drip = setInterval(() => socket.write(part === "body" ? " " : "X-Slow: 1\r\n"), 300);
    socket.on("data", (d: Buffer) => (answer += d.toString("latin1")));
    socket.on("error", () => {});
    socket.on("close", () => {
      clearInterval(drip);
      resolve({ url, part, answer, closedAfterMs: Math.round(performance.now() - started) });
    });
  });
}
