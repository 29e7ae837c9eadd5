// Which annotation asks for a Secret, and which names the certificate then carries.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type * as k8s from "@kubernetes/client-node";
import { annotations } from "../../shared/names.ts";
import { requestedSecretName, wantsShortNames } from "../../shared/serving-cert/annotations.ts";
import { hostnamesFor } from "../../shared/serving-cert/reconcile.ts";

const svc = (a: Record<string, string>, clusterIP?: string): k8s.V1Service => ({
  metadata: { name: "api", namespace: "shop", annotations: a },
  spec: clusterIP ? { clusterIP } : {},
});

describe("serving-cert annotations", () => {
  it("the OpenShift beta name wins over alpha, and both over Alauda's", () => {
    assert.equal(requestedSecretName(svc({ [annotations.secretNameAlauda]: "c" })), "c");
    assert.equal(
      requestedSecretName(svc({ [annotations.secretNameAlpha]: "b", [annotations.secretNameAlauda]: "c" })),
      "b",
    );
    assert.equal(
      requestedSecretName(svc({ [annotations.secretName]: "a", [annotations.secretNameAlpha]: "b" })),
      "a",
    );
    assert.equal(requestedSecretName(svc({ [annotations.secretName]: "" })), undefined);
  });

  it("short names: always for Alauda, opt-in for OpenShift", () => {
    assert.deepEqual(hostnamesFor(svc({ [annotations.secretNameAlauda]: "t" })), [
      "api",
      "api.shop",
      "api.shop.svc",
      "api.shop.svc.cluster.local",
    ]);
    assert.deepEqual(hostnamesFor(svc({ [annotations.secretName]: "t" })), [
      "api.shop.svc",
      "api.shop.svc.cluster.local",
    ]);
    assert.equal(
      wantsShortNames(svc({ [annotations.secretName]: "t", [annotations.shortNames]: "true" })),
      true,
    );
    assert.equal(
      wantsShortNames(svc({ [annotations.secretName]: "t", [annotations.shortNames]: "yes" })),
      false,
    );
    // Both annotations: the OpenShift one asked, so its opt-in rule applies.
    assert.equal(
      wantsShortNames(svc({ [annotations.secretName]: "t", [annotations.secretNameAlauda]: "t" })),
      false,
    );
  });

  it("a headless Alauda Service keeps the wildcards as well", () => {
    assert.deepEqual(hostnamesFor(svc({ [annotations.secretNameAlauda]: "t" }, "None")), [
      "*.api.shop.svc",
      "*.api.shop.svc.cluster.local",
      "api",
      "api.shop",
      "api.shop.svc",
      "api.shop.svc.cluster.local",
    ]);
  });
});
