// `npm start`: the whole system locally — control plane, Knative CRDs, infra/, every function under its own
// ServiceAccount, Knative's event source adapters — until Ctrl-C.
import { startLocalSystem, type LocalSystem } from "../dev/local-system/local-system.ts";
import { removeBundles } from "../dev/local-system/bundles.ts";

let system: LocalSystem | undefined;
let stopping = false;
const stop = async (code: number) => {
  if (stopping) return;
  stopping = true;
  console.log("stopping...");
  await system?.stop();
  await removeBundles();
  console.log("stopped; nothing left running");
  process.exit(code);
};
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));

try {
  system = await startLocalSystem({ log: (l) => console.log(`[start] ${l}`) });
  for (const [name, fn] of [...system.functions].sort(([a], [b]) => a.localeCompare(b))) {
    console.log(`function ${name}: ${fn.url}`);
  }
  console.log(`logs: ${system.plane.dir}/logs`);
  console.log(`ready: KUBECONFIG=${system.plane.kubeconfig} KUBECTL=${system.plane.kubectl}`);
} catch (err) {
  console.error(`start failed: ${err instanceof Error ? err.message : String(err)}`);
  await stop(1);
}
