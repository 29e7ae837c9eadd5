// Serves one function of this system: the runtime's lifecycle, joined to the API server. The one place that builds
// the Kubernetes client and the ServiceAccount-token verifier; shared by the CLI (`main.ts <function>`) and the
// per-function bundles `npm run build` writes to dist/.
import { runFunction } from "../runtime/run.ts";
import { createKube, loadKubeConfig, type Kube } from "../kube/client.ts";
import { createServiceAccountTokenVerifier } from "../kube/service-account-tokens.ts";
import type { HostFunction } from "./define.ts";

export function runHost(def: HostFunction, rest: string[]): Promise<void> {
  return runFunction(def, rest, (config, clock) => {
    const kubeConfig = loadKubeConfig(config.KUBECONFIG);
    let kube: Kube | undefined;
    const kubeOnce = () => (kube ??= createKube(kubeConfig));
    return { services: { kube: kubeOnce }, tokens: createServiceAccountTokenVerifier(kubeOnce, clock) };
  });
}
