// The function contract as this system's functions see it: the runtime's, with the API server reachable from init.
import { definerFor, type AnyFunctionDefinition } from "../runtime/define.ts";
import type { KubeAccess } from "../kube/client.ts";

export const defineFunction = definerFor<KubeAccess>();

export type HostFunction = AnyFunctionDefinition<KubeAccess>;
