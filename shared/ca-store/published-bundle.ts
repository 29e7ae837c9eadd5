// The published CA bundle, read from the ConfigMap the store writes: readers (injectors, distribution, the scan)
// never need (or get) the CA key.
import type { Kube } from "../kube/client.ts";
import { readObject } from "../kube/core.ts";
import type { CaLocation } from "./layout.ts";
import { dataKeys } from "../names.ts";
import { transient } from "../runtime/errors.ts";
import type { Clock } from "../runtime/clock.ts";

export async function readPublishedBundle(kube: Kube, where: CaLocation): Promise<string> {
  const { namespace, bundleConfigMapName: name } = where;
  const cm = await readObject(kube, "ConfigMap", namespace, name);
  const pem = cm?.data?.[dataKeys.caBundle];
  // Retryable: the CA is created by the first signer to run, which may simply not have run yet.
  if (!pem) throw transient(`the CA bundle is not published yet (ConfigMap ${namespace}/${name})`);
  return pem;
}

export const isBundleConfigMap = (
  where: CaLocation,
  ref: { kind: string; namespace?: string; name: string },
) => ref.kind === "ConfigMap" && ref.namespace === where.namespace && ref.name === where.bundleConfigMapName;

/**
 * The published bundle as this process last read it, so an event whose own copy of an object already holds it (the
 * echo of an injection) is answered without a request. Only such judgements use it: whatever is written reads the
 * bundle again, so a copy gone stale (a rotation whose event is still on its way, another replica's fan-out) can
 * skip an object for at most `maxAgeMs` or until the bundle's event comes, and never write an old bundle.
 */
export class RecentBundle {
  private last?: { pem: string; readAt: number };

  constructor(
    private readonly kube: Kube,
    private readonly where: CaLocation,
    private readonly clock: Clock,
    private readonly maxAgeMs: number,
  ) {}

  /** The bundle as published now (a request), remembered. */
  async read(): Promise<string> {
    const startedAt = this.clock.now().getTime();
    const pem = await readPublishedBundle(this.kube, this.where);
    // Of two reads in flight, the one that started later is the newer answer.
    if (!this.last || startedAt >= this.last.readAt) this.last = { pem, readAt: startedAt };
    return pem;
  }

  /** The bundle last read, if that read is recent enough to judge by. */
  known(): string | undefined {
    if (!this.last || this.clock.now().getTime() - this.last.readAt > this.maxAgeMs) return undefined;
    return this.last.pem;
  }
}
