// Running the built kubectl against a test cluster, as a user would.
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { TestCluster } from "./cluster.ts";

const run = promisify(execFile);

export async function kubectl(
  cluster: Pick<TestCluster, "kubectl" | "kubeconfig">,
  ...args: string[]
): Promise<string> {
  const { stdout } = await run(cluster.kubectl, ["--kubeconfig", cluster.kubeconfig, ...args], {
    maxBuffer: 64 << 20,
  });
  return stdout;
}
