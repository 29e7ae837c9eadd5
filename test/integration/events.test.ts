// Kubernetes Events said again are counted on one Event (as client-go does), across processes too, recorded with
// a function's own rights from infra/ against the real API server.
import { before, describe, it } from "node:test";
import assert from "node:assert/strict";
import * as k8s from "@kubernetes/client-node";
import { testCluster, type TestCluster } from "../support/cluster.ts";
import { functionKubeconfig } from "../support/identities.ts";
import { createNamespace } from "../support/namespaces.ts";
import { createKube, loadKubeConfig, type Kube } from "../../shared/kube/client.ts";
import { EventRecorder, eventName, type EventTarget } from "../../shared/kube/events.ts";
import { createLogger } from "../../shared/runtime/logger.ts";

let cluster: TestCluster;
let core: k8s.CoreV1Api;
let kube: Kube;
let ns: string;
const warnings: string[] = [];
const log = createLogger("warn", {}, (line) => warnings.push(line));

before(async () => {
  cluster = await testCluster();
  core = cluster.kc.makeApiClient(k8s.CoreV1Api);
  ns = await createNamespace(cluster.kc, "events");
  kube = createKube(loadKubeConfig(await functionKubeconfig(cluster, "inject-configmap")));
});

const target = (name: string): EventTarget => ({ apiVersion: "v1", kind: "ConfigMap", name, namespace: ns });
const say = (message: string, at: number) => ({
  type: "Warning" as const,
  reason: "CABundleNotApplicable",
  message,
  component: "inject-configmap",
  now: new Date(Date.UTC(2026, 10, 30, 12, 0, at)),
});

async function eventsAbout(name: string): Promise<k8s.CoreV1Event[]> {
  const list = await core.listNamespacedEvent({
    namespace: ns,
    fieldSelector: `involvedObject.name=${name}`,
  });
  return list.items;
}

describe("Events said again", () => {
  it("are counted on one Event, by one process and by another, with the last time it was said", async () => {
    const first = new EventRecorder();
    for (let i = 0; i < 3; i++) await first.record(kube, log, target("app-bundle"), say("no key", i));
    const replica = new EventRecorder(); // a second replica, or the same function after a restart
    await replica.record(kube, log, target("app-bundle"), say("no key", 10));

    const events = await eventsAbout("app-bundle");
    assert.equal(events.length, 1);
    assert.equal(events[0]!.count, 4);
    assert.equal(events[0]!.message, "no key");
    assert.equal(new Date(events[0]!.firstTimestamp!).toISOString(), say("", 0).now.toISOString());
    assert.equal(new Date(events[0]!.lastTimestamp!).toISOString(), say("", 10).now.toISOString());
    assert.deepEqual(warnings, []);
  });

  it("that say something else, or about another object, are Events of their own", async () => {
    const recorder = new EventRecorder();
    await recorder.record(kube, log, target("other-bundle"), say("no key", 0));
    await recorder.record(kube, log, target("other-bundle"), say("a different reason to say", 1));
    await recorder.record(kube, log, target("third-bundle"), say("no key", 2));

    assert.deepEqual((await eventsAbout("other-bundle")).map((e) => [e.message, e.count]).sort(), [
      ["a different reason to say", 1],
      ["no key", 1],
    ]);
    assert.equal((await eventsAbout("third-bundle")).length, 1);
    assert.deepEqual(warnings, []);
  });

  it("are recorded afresh once the Event has expired, even while the process remembers it", async () => {
    const recorder = new EventRecorder();
    await recorder.record(kube, log, target("expiring"), say("no key", 0));
    await recorder.record(kube, log, target("expiring"), say("no key", 1));
    const name = eventName(target("expiring"), say("no key", 0));
    await core.deleteNamespacedEvent({ namespace: ns, name }); // what the API server's event TTL does
    await recorder.record(kube, log, target("expiring"), say("no key", 2));

    const events = await eventsAbout("expiring");
    assert.equal(events.length, 1);
    assert.equal(events[0]!.count, 1);
    assert.equal(new Date(events[0]!.firstTimestamp!).toISOString(), say("", 2).now.toISOString());
    assert.deepEqual(warnings, []);
  });

  it("have valid names for objects with the longest names", () => {
    const long = "a".repeat(250) + ".b-";
    const name = eventName(target(long), say("x", 0));
    assert.ok(name.length <= 253, `${name.length}`);
    assert.match(name, /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/);
  });
});
