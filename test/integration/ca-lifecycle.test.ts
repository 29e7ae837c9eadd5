// The CA through 26+ months on a manual clock, against the real API server: bootstrap, automatic rotation
// with overlap, the previous CA leaving the bundle at its expiry, and the next rotation.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { createNamespace } from "../support/namespaces.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { opensslVerifies } from "../support/tls.ts";
import { auditMark, auditSince, describeWrite, tokenIdentity, writesBy } from "../../dev/audit.ts";
import { caStoreIn } from "../support/ca-store.ts";
import { CaStore } from "../../shared/ca-store/store.ts";
import { createKube } from "../../shared/kube/client.ts";
import { createLogger } from "../../shared/runtime/logger.ts";
import { ManualClock } from "../../shared/runtime/clock.ts";
import {
  DAY_MS,
  commonName,
  rotationDue,
  servingHostnames,
  signServingCertificate,
} from "../../shared/pki/index.ts";

let cluster: TestCluster;
let caNs: string;
let asRotateCa: k8s.KubeConfig;
before(async () => {
  cluster = await testCluster();
  caNs = await createNamespace(cluster.kc, "ca-lifecycle");
  // The store runs with rotate-ca's own rights, as the function would.
  asRotateCa = new k8s.KubeConfig();
  asRotateCa.loadFromFile(await functionKubeconfig(cluster, "rotate-ca", caNs));
});

const day = (n: number, t0: Date) => new Date(t0.getTime() + n * DAY_MS);

const verifiesAt = (at: Date, bundlePem: string, chainPem: string) =>
  opensslVerifies(bundlePem, chainPem, at);

describe("the CA over its whole life", () => {
  it("bootstraps once, rotates at 395 days left with an overlap, drops the old CA at its expiry", async () => {
    const t0 = new Date();
    const clock = new ManualClock(t0);
    const store = caStoreIn(asRotateCa, caNs, clock, createLogger("error"));
    const ca1 = await store.signingMaterial();
    assert.match(ca1.name, /^service-ca-functions-signer@\d+$/);
    const names = servingHostnames("web", "shop", false);
    clock.set(day(10, t0));
    const leaf1 = await signServingCertificate({ signer: ca1.signer, hostnames: names, now: clock.now() });

    assert.equal(rotationDue(ca1.signer.cert, day(394, t0), 395), false, "13 months + a day left: not yet");
    assert.equal(rotationDue(ca1.signer.cert, day(396, t0), 395), true, "under 13 months left: rotate");

    clock.set(day(396, t0));
    const r1 = await store.rotate("automatic");
    assert.ok(r1);
    const ca2 = r1.material;
    assert.notEqual(
      commonName(ca2.signer.cert),
      commonName(ca1.signer.cert),
      "each generation has its own subject",
    );
    assert.deepEqual(ca2.bundle.map(commonName), [ca2.name, ca1.name]);
    const leaf2 = await signServingCertificate({ signer: ca2.signer, hostnames: names, now: clock.now() });
    const leaf2Chain = leaf2.certPem + ca2.chainPem;
    const oldBundle = ca1.bundlePem;
    const at = day(400, t0);
    assert.ok(await verifiesAt(at, oldBundle, leaf1.certPem), "old leaf, old bundle");
    assert.ok(await verifiesAt(at, ca2.bundlePem, leaf1.certPem), "old leaf, new bundle");
    assert.ok(await verifiesAt(at, oldBundle, leaf2Chain), "new leaf (with its bridge), old bundle");
    assert.ok(await verifiesAt(at, ca2.bundlePem, leaf2Chain), "new leaf, new bundle");

    // Past the first CA's expiry: it leaves the bundle and the bridge leaves new chains.
    clock.set(day(791, t0));
    const later = await caStoreIn(asRotateCa, caNs, clock, createLogger("error")).signingMaterial();
    assert.deepEqual(later.bundle.map(commonName), [ca2.name]);
    assert.equal(later.chainPem, "");
    assert.equal(
      await verifiesAt(day(791, t0), later.bundlePem, leaf1.certPem),
      false,
      "an expired CA is trusted no more",
    );

    // The next rotation, 395 days before the second CA expires.
    assert.equal(
      rotationDue(ca2.signer.cert, day(790, t0), 395),
      false,
      "the second CA is not due before day 791",
    );
    clock.set(day(396 + 396, t0));
    const r2 = await store.rotate("automatic");
    assert.ok(r2);
    assert.deepEqual(r2.material.bundle.map(commonName), [r2.material.name, ca2.name]);

    const secrets = await cluster.kc.makeApiClient(k8s.CoreV1Api).listNamespacedSecret({ namespace: caNs });
    assert.equal(secrets.items.length, 1, "one CA Secret through it all");
  });

  it("a CA whose bundle never got published (cut off between the two writes) is published by the next process that loads it", async () => {
    const ns = await createNamespace(cluster.kc, "ca-unpublished");
    const rights = new k8s.KubeConfig();
    rights.loadFromFile(await functionKubeconfig(cluster, "issue-serving-cert", ns));
    const where = { namespace: ns, secretName: "signing-key", bundleConfigMapName: "signing-cabundle" };
    const first = new CaStore(createKube(rights), where, new ManualClock(new Date()), createLogger("error"));
    const created = await first.signingMaterial();
    const core = cluster.kc.makeApiClient(k8s.CoreV1Api);
    await core.deleteNamespacedConfigMap({ namespace: ns, name: "signing-cabundle" });

    const next = new CaStore(createKube(rights), where, new ManualClock(new Date()), createLogger("error"));
    const loaded = await next.signingMaterial();
    assert.equal(loaded.name, created.name);
    const cm = await core.readNamespacedConfigMap({ namespace: ns, name: "signing-cabundle" });
    assert.equal(cm.data!["ca-bundle.crt"], created.bundlePem);
  });

  it("50 handlers of one process that find no CA at once share one bootstrap: one create, one publication", async () => {
    const ns = await createNamespace(cluster.kc, "ca-burst");
    const kubeconfig = await functionKubeconfig(cluster, "issue-serving-cert", ns);
    const rights = new k8s.KubeConfig();
    rights.loadFromFile(kubeconfig);
    const where = { namespace: ns, secretName: "signing-key", bundleConfigMapName: "signing-cabundle" };
    const store = new CaStore(createKube(rights), where, new ManualClock(new Date()), createLogger("error"));
    const mark = await auditMark(cluster);

    const all = await Promise.all(Array.from({ length: 50 }, () => store.signingMaterial()));
    assert.equal(new Set(all.map((m) => m.name)).size, 1);

    const writes = writesBy(await auditSince(cluster, mark), await tokenIdentity(kubeconfig))
      .filter((e) => e.objectRef?.namespace === ns && e.objectRef?.resource !== "events")
      .map(describeWrite);
    assert.deepEqual(writes.sort(), [
      `create secrets ${ns}/signing-key → 201`,
      `patch configmaps ${ns}/signing-cabundle → 201`,
    ]);
  });
});
