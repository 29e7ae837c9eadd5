// A test host: a network namespace joined to this one by a veth pair, made and removed by the test.
// The API server refuses loopback endpoints, so servers it must reach live at the namespace's address.
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface TestHost {
  name: string;
  /** the address inside the namespace */
  address: string;
  /** argv prefix that runs a command inside the namespace */
  exec: string[];
  remove(): Promise<void>;
}

export async function createTestHost(): Promise<TestHost> {
  const n = randomInt(1, 250);
  const m = randomInt(0, 63) * 4;
  const name = `scf-${process.pid}-${n}`;
  const host = `vh${process.pid % 100000}${n}`.slice(0, 15);
  const peer = `vp${process.pid % 100000}${n}`.slice(0, 15);
  const address = `10.${200 + (n % 50)}.${n}.${m + 2}`;
  const hostAddress = `10.${200 + (n % 50)}.${n}.${m + 1}`;
  const ip = (...args: string[]) => run("ip", args);
  await ip("netns", "add", name);
  try {
    await ip("link", "add", host, "type", "veth", "peer", "name", peer);
    await ip("link", "set", peer, "netns", name);
    await ip("addr", "add", `${hostAddress}/30`, "dev", host);
    await ip("link", "set", host, "up");
    await ip("-n", name, "addr", "add", `${address}/30`, "dev", peer);
    await ip("-n", name, "link", "set", peer, "up");
    await ip("-n", name, "link", "set", "lo", "up");
  } catch (err) {
    await ip("netns", "del", name).catch(() => {});
    await ip("link", "del", host).catch(() => {});
    throw err;
  }
  return {
    name,
    address,
    exec: ["ip", "netns", "exec", name],
    remove: async () => {
      await ip("link", "del", host).catch(() => {});
      await ip("netns", "del", name).catch(() => {});
    },
  };
}
