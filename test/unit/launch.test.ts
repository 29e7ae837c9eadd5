// A built function as the image holds it: the launcher runs the bundle with the code cache the build wrote, which
// this Node accepts, which is the same bytes at every build, and without which (or with a bad one) it still starts.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { buildFunctions } from "../../scripts/build.ts";
import { nodeFlagsOf } from "../../dev/function-process-env.ts";

const run = promisify(execFile);
// The issuer: the function that does work in the background as it starts (its key pool).
const name = "issue-serving-cert";
const flags = nodeFlagsOf(name);
let first: string;
let second: string;

// As its container starts the function: Node with the function's flags, then the launcher.
const help = async (launcher: string, nodeFlags = flags) => {
  const { stdout, stderr } = await run(process.execPath, [...nodeFlags, launcher, name, "--help"]);
  return { stdout, stderr };
};

before(async () => {
  first = await mkdtemp(join(tmpdir(), "launch-a-"));
  second = await mkdtemp(join(tmpdir(), "launch-b-"));
  await buildFunctions([name], first);
  await buildFunctions([name], second);
});
after(async () => {
  await rm(first, { recursive: true, force: true });
  await rm(second, { recursive: true, force: true });
});

describe("a function's launcher and code cache", () => {
  it("the build writes the same code cache twice, so the image stays reproducible", async () => {
    const [a, b] = await Promise.all([
      readFile(join(first, `${name}.cjs.cache`)),
      readFile(join(second, `${name}.cjs.cache`)),
    ]);
    assert.ok(a.length > 100_000, `${a.length} bytes: the cache holds what the start compiled`);
    assert.ok(a.equals(b), "two builds of the same sources wrote different caches");
  });

  it("this Node accepts the cache: the function starts without a warning", async () => {
    const { stdout, stderr } = await help(join(first, `${name}.mjs`));
    assert.match(stdout, /KEY_POOL_SIZE/);
    assert.doesNotMatch(stderr, /code cache/);
  });

  it("the function's Node flags are part of what the cache must match: started without them, it is rejected", async () => {
    assert.ok(flags.length > 0, `${name} runs with Node flags of its own`);
    const { stdout, stderr } = await help(join(first, `${name}.mjs`), []);
    assert.match(stdout, /KEY_POOL_SIZE/);
    assert.match(stderr, /code cache rejected/);
  });

  it("a cache this Node rejects is said once on stderr, and the function starts all the same", async () => {
    const cache = join(first, `${name}.cjs.cache`);
    const good = await readFile(cache);
    await writeFile(cache, Buffer.alloc(good.length, 7));
    try {
      const { stdout, stderr } = await help(join(first, `${name}.mjs`));
      assert.match(stdout, /KEY_POOL_SIZE/);
      const warning = JSON.parse(stderr.trim()) as Record<string, unknown>;
      assert.equal(warning.level, "warn");
      assert.match(String(warning.msg), /code cache rejected/);
      assert.equal(warning.node, process.version);
      assert.deepEqual(warning.flags, flags);
    } finally {
      await writeFile(cache, good);
    }
  });

  it("without a cache the function starts, compiling the bundle itself", async () => {
    await rm(join(second, `${name}.cjs.cache`));
    const { stdout, stderr } = await help(join(second, `${name}.mjs`));
    assert.match(stdout, /KEY_POOL_SIZE/);
    assert.equal(stderr, "");
  });
});
