// Bounded parallelism for fan-outs, so a scan of thousands of objects does not open thousands of requests.

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  });
  await Promise.all(workers);
  return out;
}

/**
 * At most `limit` tasks in flight per key (a namespace, say), the rest waiting in arrival order: one key's
 * burst queues behind itself instead of in front of every other key. A limit of 0 means no limit.
 */
export class KeyedLimiter {
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, Array<() => void>>();

  constructor(private readonly limit: number) {}

  async run<R>(key: string, task: () => Promise<R>): Promise<R> {
    if (this.limit <= 0) return task();
    if ((this.inFlight.get(key) ?? 0) >= this.limit) {
      await new Promise<void>((resolve) => {
        const queue = this.waiting.get(key) ?? [];
        queue.push(resolve);
        this.waiting.set(key, queue);
      });
    } else {
      this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
    }
    try {
      return await task();
    } finally {
      this.release(key);
    }
  }

  /** Tasks running and waiting for a key (for tests and metrics). */
  load(key: string): { inFlight: number; waiting: number } {
    return { inFlight: this.inFlight.get(key) ?? 0, waiting: this.waiting.get(key)?.length ?? 0 };
  }

  private release(key: string) {
    const next = this.waiting.get(key)?.shift();
    if (this.waiting.get(key)?.length === 0) this.waiting.delete(key);
    if (next) return next(); // the slot passes straight to the next waiter of the same key
    const n = (this.inFlight.get(key) ?? 1) - 1;
    if (n > 0) this.inFlight.set(key, n);
    else this.inFlight.delete(key);
  }
}
