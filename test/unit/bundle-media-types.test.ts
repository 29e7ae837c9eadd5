// A bundle's express knows only the media types the functions answer with (scripts/build.ts gives mime-types a
// subset of mime-db): every answer of a built function carries the Content-Type the whole database would give it.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildFunctions } from "../../scripts/build.ts";
import { nodeFlagsOf, podLikeEnv } from "../../dev/function-process-env.ts";
import { freePort } from "../../dev/processes.ts";

const mimeTypes = createRequire(import.meta.url)("mime-types") as {
  contentType(type: string): string | false;
};
const name = "inject-configmap";
let dir: string;
let child: ChildProcess;
let base: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "media-types-"));
  const launchers = await buildFunctions([name], dir);
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  child = spawn(process.execPath, [...nodeFlagsOf(name), launchers[name]!], {
    env: { ...podLikeEnv(port), LOG_LEVEL: "error" },
    stdio: "ignore",
  });
  for (let i = 0; ; i++) {
    const up = await fetch(`${base}/health/readiness`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (i > 400) throw new Error(`${name} did not become ready`);
    await new Promise((r) => setTimeout(r, 25));
  }
});
after(async () => {
  child?.kill();
  await rm(dir, { recursive: true, force: true });
});

describe("a built function's media types", () => {
  const cases: Array<[string, RequestInit, string]> = [
    ["/health/readiness", {}, "text/plain"],
    ["/health/liveness", {}, "text/plain"],
    ["/", {}, "application/json"], // 405: POST a CloudEvent
    ["/no-such-path", {}, "application/json"],
    ["/", { method: "POST", headers: { "content-type": "application/json" }, body: "{" }, "application/json"],
  ];
  for (const [path, init, type] of cases)
    it(`${init.method ?? "GET"} ${path}: ${type} as mime-db has it`, async () => {
      const res = await fetch(`${base}${path}`, init);
      await res.arrayBuffer();
      assert.equal(res.headers.get("content-type"), mimeTypes.contentType(type));
    });

  it("/metrics: the registry's own type, untouched", async () => {
    const res = await fetch(`${base}/metrics`);
    await res.arrayBuffer();
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  });
});
