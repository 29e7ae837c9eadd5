// shared/distribution on its own: the selector grammar, the configuration's validation, and the plan per namespace.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { parseLabelSelector, selectorMatches, SelectorError } from "../../shared/distribution/selector.ts";
import { parseDistributionConfig, type DistributionConfig } from "../../shared/distribution/config.ts";
import { planNamespace, type FoundObject } from "../../shared/distribution/plan.ts";

describe("label selectors (kubectl syntax)", () => {
  const m = (sel: string, labels: Record<string, string>) => selectorMatches(parseLabelSelector(sel), labels);

  it("=, ==, !=, in, notin, exists and !exists match as the API server does", () => {
    assert.equal(m("a=b", { a: "b" }), true);
    assert.equal(m("a==b", { a: "c" }), false);
    assert.equal(m("a!=b", {}), true, "!= holds when the label is absent");
    assert.equal(m("a!=b", { a: "b" }), false);
    assert.equal(m("env in (prod, stage),tier", { env: "stage", tier: "" }), true);
    assert.equal(m("env in (prod,stage)", { env: "dev" }), false);
    assert.equal(m("env notin (prod)", {}), true);
    assert.equal(m("!legacy", { legacy: "x" }), false);
    assert.equal(m("example.com/team=x", { "example.com/team": "x" }), true);
    assert.equal(m("", { anything: "x" }), true, "the empty selector selects everything");
  });

  it("normalises its text", () => {
    assert.equal(parseLabelSelector(" a = b , c in ( d,e ) ,!f ").text, "a=b,c in (d,e),!f");
  });

  for (const bad of [
    "a=b,",
    "a in (b",
    "a in ()",
    "a=b=c",
    "-a=b",
    "a=" + "x".repeat(64),
    "a in (b,c))",
    "x/",
  ])
    it(`rejects ${JSON.stringify(bad)} with a reason`, () => {
      assert.throws(() => parseLabelSelector(bad), SelectorError);
    });
});

describe("the distribution ConfigMap", () => {
  it("no ConfigMap: off; an empty one: on for every namespace, ConfigMap only, default name", () => {
    assert.deepEqual(parseDistributionConfig(undefined), { state: "absent" });
    const v = parseDistributionConfig({});
    assert.equal(v.state, "valid");
    if (v.state !== "valid") return;
    assert.equal(v.config.enabled, true);
    assert.equal(v.config.secret, false);
    assert.equal(v.config.configMapName, "service-ca-bundle");
    assert.deepEqual(v.config.exclude, []);
  });

  it("reads every key", () => {
    const v = parseDistributionConfig({
      enabled: "True",
      namespaceSelector: "ca=yes",
      exclude: "a, b\nc",
      configMapName: "trust-bundle",
      secret: "true",
    });
    assert.equal(v.state, "valid");
    if (v.state !== "valid") return;
    assert.deepEqual(v.config.exclude, ["a", "b", "c"]);
    assert.equal(v.config.namespaceSelector.text, "ca=yes");
    assert.equal(v.config.secret, true);
  });

  it("names every problem: bad selector, bad flag, unknown key, clashing name, bad namespace", () => {
    const v = parseDistributionConfig({
      namespaceSelector: "a in (b",
      secret: "yes",
      namespaceselector: "typo",
      configMapName: "kube-root-ca.crt",
      exclude: "Not_A_Namespace",
    });
    assert.equal(v.state, "invalid");
    if (v.state !== "invalid") return;
    const all = v.problems.join("\n");
    for (const needle of ["namespaceSelector", "secret", "namespaceselector", "kube-root-ca.crt", "exclude"])
      assert.match(all, new RegExp(needle.replace(".", "\\.")), all);
  });
});

describe("the plan for one namespace", () => {
  const config = (over: Partial<Record<string, string>> = {}): DistributionConfig => {
    const v = parseDistributionConfig({ namespaceSelector: "ca=yes", secret: "true", ...over });
    assert.equal(v.state, "valid");
    return (v as { config: DistributionConfig }).config;
  };
  const source = { caNamespace: "service-ca", bundleConfigMap: "signing-cabundle" };
  const ns = (name: string, labels: Record<string, string> = { ca: "yes" }) => ({
    name,
    labels,
    terminating: false,
  });
  const ours = { "service-ca-functions.dev/distributed": "true" };
  const obj = (o: Partial<FoundObject> & Pick<FoundObject, "kind" | "name">): FoundObject => ({
    namespace: "app",
    uid: "u",
    resourceVersion: "1",
    ...o,
  });
  const want = { config: config(), bundlePem: "PEM" };
  const kinds = (actions: Array<{ do: string }>) => actions.map((a) => a.do);

  it("a selected namespace with nothing: create the ConfigMap and the Secret", () => {
    assert.deepEqual(kinds(planNamespace(want, source, ns("app"), [])), ["create", "create"]);
  });

  it("current copies: nothing; a stale one: update", () => {
    const cm = obj({
      kind: "ConfigMap",
      name: "service-ca-bundle",
      labels: ours,
      data: { "service-ca.crt": "PEM" },
    });
    const secret = obj({
      kind: "Secret",
      name: "service-root-ca",
      labels: ours,
      type: "Opaque",
      data: { "ca.crt": "T0xE" },
    });
    assert.deepEqual(kinds(planNamespace(want, source, ns("app"), [cm, secret])), ["none", "update"]);
  });

  it("a same-named object without our label is left alone, also when the namespace leaves the selection", () => {
    const users = obj({ kind: "ConfigMap", name: "service-ca-bundle", data: { mine: "x" } });
    assert.deepEqual(kinds(planNamespace(want, source, ns("app"), [users])), ["leave-foreign", "create"]);
    assert.deepEqual(kinds(planNamespace(want, source, ns("app", {}), [users])), []);
  });

  it("unselected, excluded, the CA namespace, kube-system, distribution off: only our copies are removed", () => {
    const cm = obj({ kind: "ConfigMap", name: "service-ca-bundle", labels: ours });
    const wantExcluding = { config: config({ exclude: "app" }), bundlePem: "PEM" };
    assert.deepEqual(kinds(planNamespace(want, source, ns("app", { ca: "no" }), [cm])), ["delete"]);
    assert.deepEqual(kinds(planNamespace(wantExcluding, source, ns("app"), [cm])), ["delete"]);
    assert.deepEqual(kinds(planNamespace(undefined, source, ns("app"), [cm])), ["delete"]);
    for (const name of ["service-ca", "kube-system"])
      assert.deepEqual(kinds(planNamespace(want, source, ns(name), [])), []);
  });

  it("a renamed copy: the new name is created and the old copy removed; Secret off: ours removed", () => {
    const old = obj({ kind: "ConfigMap", name: "old-name", labels: ours, data: { "service-ca.crt": "PEM" } });
    const secret = obj({ kind: "Secret", name: "service-root-ca", labels: ours, type: "Opaque" });
    const renamed = { config: config({ configMapName: "new-name", secret: "false" }), bundlePem: "PEM" };
    assert.deepEqual(kinds(planNamespace(renamed, source, ns("app"), [old, secret])), [
      "create",
      "delete",
      "delete",
    ]);
  });

  it("a terminating namespace: nothing at all", () => {
    assert.deepEqual(planNamespace(want, source, { ...ns("app"), terminating: true }, []), []);
  });
});
