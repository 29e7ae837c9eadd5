// The REST paths of shared/kube/paths.ts, which replace client-node's generated classes and its discovery
// request; the integration tests exercise each against the real API server, these say their shape.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { collectionPath, objectPath } from "../../shared/kube/paths.ts";
import { FunctionError } from "../../shared/runtime/errors.ts";
import { injectionTargets } from "../../shared/inject/targets.ts";

describe("REST paths", () => {
  it("core kinds live under /api/v1, by namespace or across all of them", () => {
    assert.equal(
      collectionPath({ apiVersion: "v1", kind: "Secret", namespace: "ns" }),
      "/api/v1/namespaces/ns/secrets",
    );
    assert.equal(collectionPath({ apiVersion: "v1", kind: "Service" }), "/api/v1/services");
    assert.equal(
      objectPath({ apiVersion: "v1", kind: "Namespace" }, "default"),
      "/api/v1/namespaces/default",
    );
  });

  it("grouped kinds live under /apis/<group>/<version>, subresources after the name", () => {
    assert.equal(
      objectPath(
        { apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition" },
        "a.example.com",
      ),
      "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.example.com",
    );
    assert.equal(
      objectPath(
        { apiVersion: "certificates.k8s.io/v1", kind: "CertificateSigningRequest" },
        "c",
        "approval",
      ),
      "/apis/certificates.k8s.io/v1/certificatesigningrequests/c/approval",
    );
  });

  it("every injection target has a path", () => {
    for (const t of injectionTargets) assert.match(collectionPath(t), /^\/apis?\/.+\/[a-z]+s$/);
  });

  it("a name cannot step out of its path", () => {
    assert.equal(
      objectPath({ apiVersion: "v1", kind: "ConfigMap", namespace: "a/b" }, "../x?y"),
      "/api/v1/namespaces/a%2Fb/configmaps/..%2Fx%3Fy",
    );
    for (const name of ["", ".", ".."])
      assert.throws(
        () => objectPath({ apiVersion: "v1", kind: "Secret", namespace: "ns" }, name),
        (err: unknown) => err instanceof FunctionError && err.kind === "malformed",
      );
  });

  it("a kind without a known resource is a typed error, not a guessed path", () => {
    assert.throws(
      () => collectionPath({ apiVersion: "v1", kind: "Pod" }),
      (err: unknown) =>
        err instanceof FunctionError && err.kind === "internal" && /kind Pod/.test(err.message),
    );
  });
});
