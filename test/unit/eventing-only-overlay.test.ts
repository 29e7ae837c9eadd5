// The eventing-only overlay runs the very containers the Knative Services describe.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import yaml from "js-yaml";
import { knativeServices, overlayFile, renderEventingOnly } from "../../dev/manifests/eventing-only.ts";

type Doc = { kind: string; metadata: { name: string }; spec: any }; // eslint-disable-line @typescript-eslint/no-explicit-any

describe("infra/overlays/eventing-only", () => {
  it("is the current rendering of infra/base/functions (run npm run render:eventing-only after editing them)", () => {
    assert.equal(readFileSync(overlayFile, "utf8"), renderEventingOnly());
  });

  it("gives every function a Deployment with its Knative Service's container, and a Service on port 80", () => {
    const docs = yaml.loadAll(readFileSync(overlayFile, "utf8")) as Doc[];
    const ksvcs = knativeServices();
    assert.equal(ksvcs.length, 9);
    for (const ksvc of ksvcs) {
      const name = ksvc.metadata.name;
      const dep = docs.find((d) => d.kind === "Deployment" && d.metadata.name === name);
      const svc = docs.find((d) => d.kind === "Service" && d.metadata.name === name);
      assert.ok(dep && svc, name);
      const want = ksvc.spec.template.spec.containers[0] as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
      const got = dep.spec.template.spec.containers[0];
      for (const key of ["image", "command", "args", "resources", "securityContext"])
        assert.deepEqual(got[key], want[key], `${name} ${key}`);
      assert.deepEqual(got.env.slice(1), want.env, `${name} env`);
      assert.deepEqual(got.env[0], { name: "PORT", value: "8080" });
      assert.equal(got.readinessProbe.httpGet.path, want.readinessProbe.httpGet.path);
      assert.equal(dep.spec.template.spec.serviceAccountName, ksvc.spec.template.spec.serviceAccountName);
      assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
      assert.equal(svc.spec.ports[0].port, 80);
    }
  });
});
