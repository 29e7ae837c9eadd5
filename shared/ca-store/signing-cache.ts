// The issuer's copy of the signing material: read once, then used until the published bundle's event says the CA
// may have changed, a judgement meets another CA, or the copy is older than its maximum age. What was issued from a
// copy no read has confirmed since is remembered: when a read shows another CA, those Services are judged again,
// so a certificate signed in the moment between a rotation and its news is re-issued, not left behind.
import type { Clock } from "../runtime/clock.ts";
import type { CaMaterial, CaStore } from "./store.ts";

export interface IssuedFrom {
  namespace: string;
  service: string;
}

/** What signs serving certificates: the store itself (a read per use), or this cache in front of it. */
export interface SigningSource {
  signingMaterial(): Promise<CaMaterial>;
  isCaSecret(ref: { kind: string; namespace?: string; name: string }): boolean;
  /** The material as the CA Secret holds it now (a read), for a judgement that must not rest on a copy. */
  currentMaterial?(): Promise<CaMaterial>;
  /** A certificate was just issued for `to` from `material`. */
  issued?(material: CaMaterial, to: IssuedFrom): void;
}

interface Unconfirmed extends IssuedFrom {
  version: string;
  at: number;
}

export class SigningCache implements SigningSource {
  private material?: CaMaterial;
  /** When the read that last gave (or confirmed) the copy started, by the clock. */
  private confirmedAt = Number.NEGATIVE_INFINITY;
  private reading?: Promise<CaMaterial>;
  private unconfirmed: Unconfirmed[] = [];
  private onReplaced: (stale: IssuedFrom[], current: CaMaterial) => void = () => {};

  constructor(
    private readonly store: Pick<CaStore, "signingMaterial" | "isCaSecret">,
    private readonly clock: Clock,
    private readonly maxAgeMs: number,
    /** At most this many unconfirmed issuances are remembered (the scan after a rotation covers the rest). */
    private readonly capacity = 10_000,
  ) {}

  /** Who is told of the Services issued from a CA that a read has since shown replaced. */
  whenReplaced(listener: (stale: IssuedFrom[], current: CaMaterial) => void): void {
    this.onReplaced = listener;
  }

  isCaSecret(ref: { kind: string; namespace?: string; name: string }): boolean {
    return this.store.isCaSecret(ref);
  }

  async signingMaterial(): Promise<CaMaterial> {
    if (this.material && this.clock.now().getTime() - this.confirmedAt < this.maxAgeMs) return this.material;
    return this.currentMaterial();
  }

  /** Reads the CA Secret now; concurrent callers share one read. */
  currentMaterial(): Promise<CaMaterial> {
    this.reading ??= (async () => {
      const startedAt = this.clock.now().getTime();
      try {
        const material = await this.store.signingMaterial();
        this.confirm(material, startedAt);
        return material;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  issued(material: CaMaterial, to: IssuedFrom): void {
    // Signed from a copy that a read finished meanwhile has shown replaced.
    if (this.material && material.resourceVersion !== this.material.resourceVersion)
      return this.onReplaced([to], this.material);
    this.unconfirmed.push({ ...to, version: material.resourceVersion, at: this.clock.now().getTime() });
    if (this.unconfirmed.length > this.capacity) this.unconfirmed.shift();
  }

  /** Issuances no read has confirmed yet (for metrics and tests). */
  get pending(): number {
    return this.unconfirmed.length;
  }

  private confirm(material: CaMaterial, readStartedAt: number): void {
    this.material = material;
    this.confirmedAt = readStartedAt;
    // Issued from this version before the read started: any scan after a later rotation sees that Secret.
    const stale = this.unconfirmed.filter((u) => u.version !== material.resourceVersion);
    this.unconfirmed = this.unconfirmed.filter(
      (u) => u.version === material.resourceVersion && u.at >= readStartedAt,
    );
    if (stale.length > 0)
      this.onReplaced(
        stale.map(({ namespace, service }) => ({ namespace, service })),
        material,
      );
  }
}
