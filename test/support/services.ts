// The Service a user annotates for a serving certificate.
import type * as k8s from "@kubernetes/client-node";
import { annotations } from "../../shared/names.ts";

export const createAnnotatedService = (
  core: k8s.CoreV1Api,
  namespace: string,
  name: string,
  secretName: string,
) =>
  core.createNamespacedService({
    namespace,
    body: {
      metadata: { name, annotations: { [annotations.secretName]: secretName } },
      spec: { ports: [{ port: 443 }] },
    },
  });
