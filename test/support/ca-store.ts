// A CA store driven by a test directly (as rotate-ca's ServiceAccount), in a CA namespace of the test's own.
import type * as k8s from "@kubernetes/client-node";
import { CaStore } from "../../shared/ca-store/store.ts";
import { createKube } from "../../shared/kube/client.ts";
import type { Clock } from "../../shared/runtime/clock.ts";
import type { Logger } from "../../shared/runtime/logger.ts";

export const caStoreIn = (kc: k8s.KubeConfig, caNamespace: string, clock: Clock, log: Logger) =>
  new CaStore(
    createKube(kc),
    { namespace: caNamespace, secretName: "signing-key", bundleConfigMapName: "signing-cabundle" },
    clock,
    log,
  );
