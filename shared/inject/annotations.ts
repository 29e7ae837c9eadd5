// Whether an object opted in to bundle injection (the annotations are in names.ts).
import { annotations as names } from "../names.ts";

/** `"true"`, compared case-insensitively, as OpenShift does. */
export function wantsInjection(
  annotations: Record<string, string> | undefined,
  readsAlpha: boolean,
): boolean {
  const is = (v: string | undefined) => v?.toLowerCase() === "true";
  return (
    is(annotations?.[names.injectCaBundle]) || (readsAlpha && is(annotations?.[names.injectCaBundleAlpha]))
  );
}
