// The function runtime as a broker sees it: real HTTP, real CloudEvents, typed answers.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import type { Server } from "node:http";
import { CloudEvent, HTTP } from "cloudevents";
import * as z from "zod";
import { defineFunction } from "../../shared/runtime/define.ts";
import { createFunctionHost } from "../../shared/runtime/server.ts";
import { createLogger } from "../../shared/runtime/logger.ts";
import { systemClock } from "../../shared/runtime/clock.ts";
import { createRuntimeMetrics } from "../../shared/runtime/metrics.ts";
import { apiServerEvent, pingEvent, type ObjectEvent, type PingEvent } from "../../shared/events/knative.ts";
import { transient } from "../../shared/runtime/errors.ts";

const calls: Array<ObjectEvent | PingEvent> = [];
const probe = defineFunction({
  name: "probe",
  description: "records what it is given",
  config: {},
  event: z.union([apiServerEvent([{ apiVersion: "v1", kind: "Service" }]), pingEvent]),
  init: () => ({}),
  async handle(event) {
    calls.push(event);
    if (event.source === "apiserver" && event.ref.name === "flaky") throw transient("API server unavailable");
    if (event.source === "apiserver" && event.ref.name === "slow")
      await new Promise((r) => setTimeout(r, 500));
    return { seen: event.source };
  },
});

let server: Server;
let url: string;
before(async () => {
  const host = createFunctionHost(
    probe,
    {},
    {
      log: createLogger("error"),
      clock: systemClock,
      bodyLimitBytes: 64 * 1024,
      requestTimeoutMs: 200,
      metrics: createRuntimeMetrics("probe", false),
      // Senders are test/unit/event-senders.test.ts's subject: here one token is a source's.
      checkSender: async (authorization) =>
        authorization === "Bearer source-token"
          ? { username: "system:serviceaccount:service-ca:source" }
          : { status: 401, reason: "not the source's token" },
    },
  );
  host.setReady(true);
  server = host.app.listen(0, "127.0.0.1");
  await new Promise((r) => server.once("listening", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => new Promise<void>((r) => server.close(() => r())));

const serviceRef = { kind: "Service", namespace: "default", name: "web", apiVersion: "v1" };
const knativeHeaders = (type: string) => ({
  "ce-specversion": "1.0",
  "ce-id": "6f9a8d1e-2b7c-4a53-9d0e-0c1b2a3f4e5d",
  "ce-source": "https://127.0.0.1:6443",
  "ce-type": type,
  "ce-subject": "/apis/v1/namespaces/default/services/web",
  "ce-kind": "Service",
  "ce-name": "web",
  "ce-namespace": "default",
  "ce-apiversion": "v1",
  "content-type": "application/json",
});

async function post(headers: Record<string, string>, body: string | Buffer) {
  const res = await fetch(url, {
    method: "POST",
    headers: { authorization: "Bearer source-token", ...headers },
    body: typeof body === "string" ? body : new Uint8Array(body),
  });
  const text = await res.text();
  let json: { error?: { kind: string; message: string } } & Record<string, unknown> = {};
  try {
    json = JSON.parse(text);
  } catch {
    /* asserted by callers where it matters */
  }
  return { status: res.status, json, contentType: res.headers.get("content-type") ?? "" };
}

async function expectRejected(headers: Record<string, string>, body: string | Buffer, status = 400) {
  const before = calls.length;
  const res = await post(headers, body);
  assert.equal(res.status, status, JSON.stringify(res.json));
  assert.match(res.contentType, /application\/json/);
  assert.equal(typeof res.json.error?.message, "string");
  assert.ok(res.json.error!.message.length > 5, "the error says what is wrong");
  assert.equal(calls.length, before, "the handler was not called");
  return res.json.error!;
}

describe("function runtime", () => {
  it("accepts a binary-mode ApiServerSource event exactly as Knative sends it", async () => {
    const res = await post(knativeHeaders("dev.knative.apiserver.ref.add"), JSON.stringify(serviceRef));
    assert.equal(res.status, 200);
    assert.deepEqual(calls.at(-1), {
      source: "apiserver",
      action: "add",
      mode: "ref",
      ref: { apiVersion: "v1", kind: "Service", namespace: "default", name: "web" },
    });
  });

  it("accepts a structured-mode event built by the cloudevents SDK", async () => {
    const ce = new CloudEvent({
      type: "dev.knative.apiserver.resource.update",
      source: "https://127.0.0.1:6443",
      data: {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "api", namespace: "prod", uid: "u1" },
        spec: {},
      },
    });
    const msg = HTTP.structured(ce);
    const res = await post(msg.headers as Record<string, string>, msg.body as string);
    assert.equal(res.status, 200);
    const seen = calls.at(-1) as ObjectEvent;
    assert.equal(seen.mode, "resource");
    assert.deepEqual(seen.ref, { apiVersion: "v1", kind: "Service", namespace: "prod", name: "api" });
  });

  it("accepts a PingSource event", async () => {
    const res = await post(
      {
        ...knativeHeaders("dev.knative.sources.ping"),
        "ce-source": "/apis/v1/namespaces/service-ca/pingsources/daily",
      },
      JSON.stringify({ reason: "cron" }),
    );
    assert.equal(res.status, 200);
    assert.deepEqual(calls.at(-1), { source: "ping", data: { reason: "cron" } });
  });

  it("answers 5xx for a transient failure so the broker redelivers", async () => {
    const res = await post(
      knativeHeaders("dev.knative.apiserver.ref.update"),
      JSON.stringify({ ...serviceRef, name: "flaky" }),
    );
    assert.equal(res.status, 503);
    assert.equal(res.json.error?.kind, "transient");
  });

  it("answers 503 when the handler outlives the request timeout", async () => {
    const res = await post(
      knativeHeaders("dev.knative.apiserver.ref.update"),
      JSON.stringify({ ...serviceRef, name: "slow" }),
    );
    assert.equal(res.status, 503);
    assert.match(res.json.error!.message, /did not finish within 200 ms/);
  });

  it("rejects requests that are not CloudEvents", async () => {
    const e = await expectRejected({ "content-type": "application/json" }, JSON.stringify(serviceRef));
    assert.match(e.message, /not a CloudEvent/);
  });

  it("rejects missing or wrong required attributes", async () => {
    for (const drop of ["ce-id", "ce-source", "ce-type"]) {
      const h: Record<string, string> = knativeHeaders("dev.knative.apiserver.ref.add");
      delete h[drop];
      await expectRejected(h, JSON.stringify(serviceRef));
    }
    await expectRejected(
      { ...knativeHeaders("dev.knative.apiserver.ref.add"), "ce-specversion": "0.3" },
      JSON.stringify(serviceRef),
    );
    await expectRejected(
      { "content-type": "application/cloudevents+json" },
      JSON.stringify({ specversion: "1.0", type: "x", source: "s" }),
    );
  });

  it("rejects malformed JSON in both modes", async () => {
    const e = await expectRejected(knativeHeaders("dev.knative.apiserver.ref.add"), "{not json");
    assert.match(e.message, /JSON/);
    await expectRejected({ "content-type": "application/cloudevents+json" }, "{not json");
  });

  it("rejects unknown event types and says which", async () => {
    const e = await expectRejected(knativeHeaders("com.example.unknown"), JSON.stringify(serviceRef));
    assert.match(e.message, /not accepted by probe/);
  });

  it("rejects the wrong kind, a wrong data shape and invalid names", async () => {
    await expectRejected(
      knativeHeaders("dev.knative.apiserver.ref.add"),
      JSON.stringify({ ...serviceRef, kind: "Pod" }),
    );
    await expectRejected(knativeHeaders("dev.knative.apiserver.ref.add"), JSON.stringify({ name: 42 }));
    await expectRejected(knativeHeaders("dev.knative.apiserver.ref.add"), JSON.stringify([serviceRef]));
    await expectRejected(
      knativeHeaders("dev.knative.apiserver.ref.add"),
      JSON.stringify({ ...serviceRef, name: "Ünïcødé/../x" }),
    );
    await expectRejected(knativeHeaders("dev.knative.apiserver.resource.add"), JSON.stringify(serviceRef));
  });

  it("rejects batches and bodies over the limit", async () => {
    await expectRejected({ "content-type": "application/cloudevents-batch+json" }, "[]");
    await expectRejected(knativeHeaders("dev.knative.apiserver.ref.add"), Buffer.alloc(65 * 1024, 0x20), 413);
  });

  it("serves Knative's health endpoints and 405/404 for other requests", async () => {
    assert.equal((await fetch(`${url}/health/readiness`)).status, 200);
    assert.equal((await fetch(`${url}/health/liveness`)).status, 200);
    assert.equal((await fetch(url)).status, 405);
    assert.equal((await fetch(`${url}/nope`)).status, 404);
  });
});
