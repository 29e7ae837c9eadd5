// `npm start`: the whole system locally — control plane, every function host — until Ctrl-C.
import { join } from "node:path";
import { startControlPlane } from "../test/controlplane/control-plane.ts";
import { startFunction, type RunningFunction } from "../test/support/function-hosts.ts";
import { functionNames } from "../shared/runtime/names.ts";

const plane = await startControlPlane({ log: (l) => console.log(`[control-plane] ${l}`) });
const running: RunningFunction[] = [];
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  console.log("stopping...");
  await Promise.all(running.map((f) => f.process.stop()));
  await plane.stop();
  console.log("stopped; nothing left running");
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

try {
  const logs = join(plane.dir, "logs");
  for (const name of functionNames()) {
    const fn = await startFunction(name, {
      kubeconfig: plane.kubeconfig,
      logFile: join(logs, `${name}.log`),
    });
    running.push(fn);
    console.log(`function ${name}: ${fn.url}`);
  }
  console.log(`logs: ${logs}`);
  console.log(`ready: KUBECONFIG=${plane.kubeconfig} KUBECTL=${plane.kubectl}`);
} catch (err) {
  console.error(`start failed: ${err instanceof Error ? err.message : String(err)}`);
  await stop(1);
}
