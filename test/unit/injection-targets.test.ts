// The per-kind injection adapters of shared/inject/targets.ts, without an API server: where each kind holds its
// bundle, which objects cannot take one, and that each patch sets exactly the bundle fields and keeps the rest.
// `merged` applies a patch as the API server would (JSON merge patch, strategic merge keyed by webhook name,
// server-side apply of the one owned key), so "keeps the rest" is checked on the object that results.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  apiServiceTarget,
  configMapTarget,
  crdTarget,
  mutatingWebhookTarget,
  validatingWebhookTarget,
  type AnyObject,
  type InjectionTarget,
  type Patch,
} from "../../shared/inject/targets.ts";
import { wantsInjection } from "../../shared/inject/annotations.ts";
import { holdsBundle, judgeCopy } from "../../shared/inject/injector.ts";
import { annotations } from "../../shared/names.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nbmV3\n-----END CERTIFICATE-----\n";
const OLD_PEM = "-----BEGIN CERTIFICATE-----\nb2xk\n-----END CERTIFICATE-----\n";
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** The injector's rule: nothing is written when every managed field holds the bundle. */
const isCurrent = holdsBundle;

const isObject = (v: unknown): v is AnyObject => typeof v === "object" && v !== null && !Array.isArray(v);

/** The object after the API server applies `patch` to `obj` (neither is changed). */
function merged(obj: AnyObject, patch: Patch): AnyObject {
  const merge = (into: unknown, body: unknown): unknown => {
    if (!isObject(body)) return body;
    const out: AnyObject = isObject(into) ? { ...into } : {};
    for (const [k, v] of Object.entries(body)) {
      // Strategic merge: a list of named entries merges entry by entry; a merge patch replaces lists whole.
      out[k] =
        Array.isArray(v) && patch.strategy === "strategic" && Array.isArray(out[k])
          ? mergeByName(out[k] as AnyObject[], v as AnyObject[])
          : merge(out[k], v);
    }
    return out;
  };
  const mergeByName = (into: AnyObject[], body: AnyObject[]) => {
    const out = into.map((e) => {
      const p = body.find((b) => b.name === e.name);
      return p ? merge(e, p) : e;
    });
    return [...out, ...body.filter((b) => !into.some((e) => e.name === b.name))];
  };
  return merge(obj, patch.body) as AnyObject;
}

const allTargets = [
  configMapTarget,
  apiServiceTarget,
  crdTarget,
  mutatingWebhookTarget,
  validatingWebhookTarget,
];

describe("ConfigMap: the bundle is data[service-ca.crt]", () => {
  it("reads no bundle from a ConfigMap without data, or without the key", () => {
    assert.deepEqual(configMapTarget.currentBundles({ metadata: { name: "trust" } }), [undefined]);
    assert.deepEqual(configMapTarget.currentBundles({ data: { "app.conf": "x" } }), [undefined]);
    assert.deepEqual(configMapTarget.currentBundles({ data: { "service-ca.crt": PEM } }), [PEM]);
  });

  it("the patch owns only service-ca.crt (server-side apply): the other keys stay as they were", () => {
    const cm = { metadata: { name: "trust" }, data: { "app.conf": "x", "service-ca.crt": OLD_PEM } };
    const patch = configMapTarget.patch(cm, PEM);
    // An applied key is owned by the injector from then on, so the body must carry nothing but the bundle.
    assert.deepEqual(patch, { strategy: "apply", body: { data: { "service-ca.crt": PEM } } });
    const after = merged(cm, patch);
    assert.deepEqual(after.data, { "app.conf": "x", "service-ca.crt": PEM });
    assert.equal(isCurrent(configMapTarget, after, PEM), true);
  });

  it("a ConfigMap holding the bundle is current; one holding an older bundle is not", () => {
    assert.equal(isCurrent(configMapTarget, { data: { "service-ca.crt": PEM } }, PEM), true);
    assert.equal(isCurrent(configMapTarget, { data: { "service-ca.crt": OLD_PEM } }, PEM), false);
    assert.equal(isCurrent(configMapTarget, { data: {} }, PEM), false);
  });
});

describe("APIService: the bundle is spec.caBundle, base64", () => {
  const apiService = (caBundle?: string): AnyObject => ({
    metadata: { name: "v1.metrics.example.com" },
    spec: {
      group: "metrics.example.com",
      version: "v1",
      service: { namespace: "metrics", name: "api", port: 443 },
      groupPriorityMinimum: 100,
      versionPriority: 10,
      ...(caBundle === undefined ? {} : { caBundle }),
    },
  });

  it("reads the PEM out of the base64 field; no field, no bundle", () => {
    assert.deepEqual(apiServiceTarget.currentBundles({ metadata: { name: "v1.x" } }), [undefined]);
    assert.deepEqual(apiServiceTarget.currentBundles(apiService()), [undefined]);
    assert.deepEqual(apiServiceTarget.currentBundles(apiService(b64(PEM))), [PEM]);
  });

  it("the merge patch writes base64 of the PEM into spec.caBundle and keeps the service and priorities", () => {
    const obj = apiService(b64(OLD_PEM));
    const patch = apiServiceTarget.patch(obj, PEM);
    assert.deepEqual(patch, { strategy: "merge", body: { spec: { caBundle: b64(PEM) } } });
    const after = merged(obj, patch);
    assert.deepEqual(after, apiService(b64(PEM)));
    assert.equal(isCurrent(apiServiceTarget, after, PEM), true);
  });

  it("a raw PEM (not base64) in caBundle does not read as the bundle", () => {
    assert.equal(isCurrent(apiServiceTarget, apiService(PEM), PEM), false);
  });
});

describe("CustomResourceDefinition: the bundle is the conversion webhook's clientConfig.caBundle", () => {
  const crd = (conversion?: AnyObject): AnyObject => ({
    metadata: { name: "widgets.example.com" },
    spec: {
      group: "example.com",
      names: { kind: "Widget", plural: "widgets" },
      scope: "Namespaced",
      ...(conversion ? { conversion } : {}),
    },
  });
  const webhookConversion = (caBundle?: string) => ({
    strategy: "Webhook",
    webhook: {
      conversionReviewVersions: ["v1"],
      clientConfig: {
        service: { namespace: "widgets", name: "convert", path: "/convert", port: 443 },
        ...(caBundle === undefined ? {} : { caBundle }),
      },
    },
  });

  it("a CRD without a conversion webhook cannot take a bundle, and says why", () => {
    assert.match(crdTarget.notApplicable!(crd()) ?? "", /strategy is None, not Webhook/);
    assert.match(crdTarget.notApplicable!(crd({ strategy: "None" })) ?? "", /strategy is None, not Webhook/);
    assert.equal(crdTarget.notApplicable!(crd(webhookConversion())), undefined);
  });

  it("reads the PEM out of the conversion webhook; a webhook without caBundle holds none", () => {
    assert.deepEqual(crdTarget.currentBundles(crd()), [undefined]);
    assert.deepEqual(crdTarget.currentBundles(crd(webhookConversion())), [undefined]);
    assert.deepEqual(crdTarget.currentBundles(crd(webhookConversion(b64(PEM)))), [PEM]);
  });

  it("the merge patch sets only the caBundle: strategy, review versions, service and the schema stay", () => {
    const obj = crd(webhookConversion(b64(OLD_PEM)));
    const patch = crdTarget.patch(obj, PEM);
    assert.deepEqual(patch, {
      strategy: "merge",
      body: { spec: { conversion: { webhook: { clientConfig: { caBundle: b64(PEM) } } } } },
    });
    const after = merged(obj, patch);
    assert.deepEqual(after, crd(webhookConversion(b64(PEM))));
    assert.equal(isCurrent(crdTarget, after, PEM), true);
  });
});

for (const target of [mutatingWebhookTarget, validatingWebhookTarget]) {
  describe(`${target.kind}: every webhook's clientConfig.caBundle`, () => {
    const webhook = (name: string, caBundle?: string): AnyObject => ({
      name,
      admissionReviewVersions: ["v1"],
      sideEffects: "None",
      rules: [{ operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"] }],
      clientConfig: {
        service: { namespace: "hooks", name: name.split(".")[0], path: "/admit" },
        ...(caBundle === undefined ? {} : { caBundle }),
      },
    });
    const config = (...webhooks: AnyObject[]): AnyObject => ({
      apiVersion: target.apiVersion,
      kind: target.kind,
      metadata: { name: "hooks" },
      webhooks,
    });

    it("a configuration without webhooks cannot take a bundle", () => {
      assert.equal(target.notApplicable!({ metadata: { name: "hooks" } }), "it has no webhooks");
      assert.equal(target.notApplicable!(config()), "it has no webhooks");
      assert.equal(target.notApplicable!(config(webhook("a.example.com"))), undefined);
    });

    it("reads one bundle per webhook, in order: current, absent and stale alike", () => {
      const obj = config(
        webhook("a.example.com", b64(PEM)),
        webhook("b.example.com"),
        webhook("c.example.com", b64(OLD_PEM)),
      );
      assert.deepEqual(target.currentBundles(obj), [PEM, undefined, OLD_PEM]);
      assert.equal(
        isCurrent(target, obj, PEM),
        false,
        "one current webhook does not make the object current",
      );
    });

    it("two webhooks → both get the bundle, by name, and nothing else is in the patch", () => {
      const obj = config(webhook("a.example.com", b64(OLD_PEM)), webhook("b.example.com"));
      const patch = target.patch(obj, PEM);
      assert.deepEqual(patch, {
        strategy: "strategic",
        body: {
          webhooks: [
            { name: "a.example.com", clientConfig: { caBundle: b64(PEM) } },
            { name: "b.example.com", clientConfig: { caBundle: b64(PEM) } },
          ],
        },
      });
    });

    it("after the patch every webhook keeps its rules and service and holds the bundle: the next pass writes nothing", () => {
      const obj = config(webhook("a.example.com", b64(OLD_PEM)), webhook("b.example.com"));
      const after = merged(obj, target.patch(obj, PEM));
      assert.deepEqual(after, config(webhook("a.example.com", b64(PEM)), webhook("b.example.com", b64(PEM))));
      assert.equal(isCurrent(target, after, PEM), true);
      assert.deepEqual(merged(after, target.patch(after, PEM)), after);
    });
  });
}

describe("every kind", () => {
  it("a patch for an object that already holds the bundle changes nothing", () => {
    const current: Array<[InjectionTarget, AnyObject]> = [
      [configMapTarget, { data: { "service-ca.crt": PEM, other: "kept" } }],
      [apiServiceTarget, { spec: { caBundle: b64(PEM), group: "g" } }],
      [
        crdTarget,
        { spec: { conversion: { strategy: "Webhook", webhook: { clientConfig: { caBundle: b64(PEM) } } } } },
      ],
      [mutatingWebhookTarget, { webhooks: [{ name: "m", clientConfig: { caBundle: b64(PEM) } }] }],
      [validatingWebhookTarget, { webhooks: [{ name: "v", clientConfig: { caBundle: b64(PEM) } }] }],
    ];
    assert.deepEqual(
      current.map(([t]) => t.kind),
      allTargets.map((t) => t.kind),
    );
    for (const [t, obj] of current) {
      assert.equal(isCurrent(t, obj, PEM), true, t.kind);
      assert.deepEqual(merged(obj, t.patch(obj, PEM)), obj, t.kind);
    }
  });

  it("ConfigMaps and APIServices also honour the alpha annotation; CRDs and webhook configurations only beta", () => {
    const honoursAlpha = allTargets.map((t) => [
      t.kind,
      wantsInjection({ [annotations.injectCaBundleAlpha]: "true" }, t.readsAlphaAnnotation),
    ]);
    assert.deepEqual(honoursAlpha, [
      ["ConfigMap", true],
      ["APIService", true],
      ["CustomResourceDefinition", false],
      ["MutatingWebhookConfiguration", false],
      ["ValidatingWebhookConfiguration", false],
    ]);
    for (const t of allTargets) {
      assert.equal(
        wantsInjection({ [annotations.injectCaBundle]: "True" }, t.readsAlphaAnnotation),
        true,
        t.kind,
      );
      assert.equal(
        wantsInjection({ [annotations.injectCaBundle]: "yes" }, t.readsAlphaAnnotation),
        false,
        t.kind,
      );
      assert.equal(wantsInjection(undefined, t.readsAlphaAnnotation), false, t.kind);
    }
  });

  it("only ConfigMaps are namespaced; each kind is addressed by its served apiVersion", () => {
    assert.deepEqual(
      allTargets.map((t) => [t.apiVersion, t.kind, t.namespaced]),
      [
        ["v1", "ConfigMap", true],
        ["apiregistration.k8s.io/v1", "APIService", false],
        ["apiextensions.k8s.io/v1", "CustomResourceDefinition", false],
        ["admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", false],
        ["admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", false],
      ],
    );
  });
});

describe("an event's own copy (Resource mode) is judged without a request only when it needs nothing", () => {
  const annotated = { metadata: { name: "trust", annotations: { [annotations.injectCaBundle]: "true" } } };
  it("a copy without the annotation needs nothing, whatever the bundle", () => {
    assert.equal(judgeCopy(configMapTarget, { metadata: { name: "plain" } }, undefined), "not-annotated");
    assert.equal(judgeCopy(configMapTarget, { metadata: { name: "plain" } }, PEM), "not-annotated");
  });
  it("an annotated copy holding the bundle last read is current; anything else is left to a read", () => {
    assert.equal(
      judgeCopy(configMapTarget, { ...annotated, data: { "service-ca.crt": PEM } }, PEM),
      "current",
    );
    assert.equal(
      judgeCopy(configMapTarget, { ...annotated, data: { "service-ca.crt": OLD_PEM } }, PEM),
      undefined,
    );
    assert.equal(judgeCopy(configMapTarget, annotated, PEM), undefined);
    // No bundle read recently enough: even a copy holding one is read.
    assert.equal(
      judgeCopy(configMapTarget, { ...annotated, data: { "service-ca.crt": PEM } }, undefined),
      undefined,
    );
  });
  it("a copy its kind cannot inject is read (the read path records why)", () => {
    const crd = { metadata: annotated.metadata, spec: { conversion: { strategy: "None" } } };
    assert.equal(judgeCopy(crdTarget, crd, PEM), undefined);
  });
});
