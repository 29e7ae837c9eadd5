// A small bounded pool of pre-generated key pairs, so RSA key generation (~150–230 ms) leaves the latency path.
// Stateful (background generation, waiters), so it lives beside its user rather than in the pure shared/pki.
import { generateKeyPair, type KeyAlgorithm } from "../pki/index.ts";

export interface KeyPoolStats {
  /** Keys handed out that were already generated. */
  hits: number;
  /** Keys that had to be generated while a caller waited. */
  misses: number;
  ready: number;
}

export class KeyPool {
  private readonly ready: CryptoKeyPair[] = [];
  private readonly waiting: Array<{
    owner: string;
    resolve: (k: CryptoKeyPair) => void;
    reject: (e: unknown) => void;
  }> = [];
  /** When each owner was last handed a key it waited for (a count of such hand-outs), for round-robin. */
  private readonly lastServed = new Map<string, number>();
  private served = 0;
  private filling = 0;
  private closed = false;
  /** Set when a background generation failed with nobody waiting; the next take() tries again. */
  private stalled = false;
  private hits = 0;
  private misses = 0;

  /**
   * `size` keys are kept ready (0: none, generate only when asked). At most `parallel` generations run at once,
   * ahead of need or for a caller waiting: WebCrypto runs them on libuv's thread pool, so the event loop stays
   * free, and the cap leaves the remaining cores to everything else.
   */
  constructor(
    readonly size: number,
    readonly algorithm: KeyAlgorithm = "rsa-2048",
    private readonly parallel = 1,
    private readonly generate: (a: KeyAlgorithm) => Promise<CryptoKeyPair> = generateKeyPair,
  ) {}

  /** Begins generating keys ahead; until then (or without it) take() generates on demand and refills. */
  start(): this {
    this.refill();
    return this;
  }

  /**
   * A fresh key pair, never handed out twice: a ready one, or a coming one. Callers waiting for keys are served
   * round-robin by `owner` (a namespace, say), the longest unserved first: a tenant that drains the pool waits
   * behind itself, and another tenant's caller gets the next key.
   */
  take(owner = ""): Promise<CryptoKeyPair> {
    if (this.closed) return Promise.reject(new Error("key pool closed"));
    this.stalled = false;
    const key = this.ready.shift();
    if (key) {
      this.hits++;
      this.refill();
      return Promise.resolve(key);
    }
    this.misses++;
    const next = new Promise<CryptoKeyPair>((resolve, reject) =>
      this.waiting.push({ owner, resolve, reject }),
    );
    this.refill();
    return next;
  }

  stats(): KeyPoolStats {
    return { hits: this.hits, misses: this.misses, ready: this.ready.length };
  }

  close(): void {
    this.closed = true;
    this.ready.length = 0;
    for (const w of this.waiting.splice(0)) w.reject(new Error("key pool closed"));
  }

  private refill(): void {
    while (
      !this.closed &&
      !this.stalled &&
      this.filling < this.parallel &&
      this.ready.length + this.filling < this.size + this.waiting.length
    ) {
      this.filling++;
      this.generate(this.algorithm)
        .then(
          (k) => {
            const waiter = this.nextWaiter();
            if (waiter) waiter.resolve(k);
            else if (!this.closed) this.ready.push(k);
          },
          (err: unknown) => {
            const waiter = this.nextWaiter();
            if (waiter) waiter.reject(err);
            else this.stalled = true;
          },
        )
        .finally(() => {
          this.filling--;
          this.refill();
        });
    }
  }

  private nextWaiter() {
    let best = -1;
    for (let i = 0; i < this.waiting.length; i++) {
      const at = this.lastServed.get(this.waiting[i]!.owner) ?? -1;
      if (best < 0 || at < (this.lastServed.get(this.waiting[best]!.owner) ?? -1)) best = i;
    }
    if (best < 0) return undefined;
    const [waiter] = this.waiting.splice(best, 1);
    this.lastServed.set(waiter!.owner, this.served++);
    return waiter;
  }
}
