// A small bounded pool of pre-generated key pairs, so RSA key generation (~150–230 ms) leaves the latency path.
import { generateKeyPair, type KeyAlgorithm } from "./keys.ts";

export interface KeyPoolStats {
  /** Keys handed out that were already generated. */
  hits: number;
  /** Keys that had to be generated while a caller waited. */
  misses: number;
  ready: number;
}

export class KeyPool {
  private readonly ready: CryptoKeyPair[] = [];
  private filling = 0;
  private closed = false;
  /** Set when a background generation failed; the next take() tries again instead of spinning. */
  private stalled = false;
  private hits = 0;
  private misses = 0;

  /**
   * `size` keys are kept ready; at most `parallel` are generated at once in the background (WebCrypto runs
   * key generation on libuv's thread pool, so the event loop stays free).
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

  /** A fresh key pair, never handed out twice. */
  async take(): Promise<CryptoKeyPair> {
    const key = this.ready.shift();
    this.stalled = false;
    this.refill();
    if (key) {
      this.hits++;
      return key;
    }
    this.misses++;
    return this.generate(this.algorithm);
  }

  stats(): KeyPoolStats {
    return { hits: this.hits, misses: this.misses, ready: this.ready.length };
  }

  close(): void {
    this.closed = true;
    this.ready.length = 0;
  }

  private refill(): void {
    while (
      !this.closed &&
      !this.stalled &&
      this.ready.length + this.filling < this.size &&
      this.filling < this.parallel
    ) {
      this.filling++;
      this.generate(this.algorithm)
        .then(
          (k) => {
            if (!this.closed) this.ready.push(k);
          },
          () => {
            this.stalled = true;
          },
        )
        .finally(() => {
          this.filling--;
          this.refill();
        });
    }
  }
}
