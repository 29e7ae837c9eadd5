import { asFunctionError } from "./errors.ts";
import type { Logger } from "./logger.ts";

// Bounded parallelism: for fan-outs (a scan of thousands of objects does not open thousands of requests) and per
// key (one tenant's burst queues behind itself, never in front of another tenant's work).

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

/** What became of work handed to {@link KeyedLimiter.submit}. */
export type Submitted = "started" | "queued" | "coalesced";

export interface BackgroundFailure {
  key: string;
  item: string;
  error: unknown;
  /** 1 for the first failure of this submission. */
  attempt: number;
}

export interface KeyedLimiterOptions {
  /**
   * Called when submitted work fails; the number it returns is a delay in ms after which the item is submitted
   * again, `undefined` gives it up (the caller's periodic repair finds it).
   */
  onBackgroundFailure?: (failure: BackgroundFailure) => number | undefined;
}

/**
 * A failure policy for submitted work: tried again after `firstDelayMs`, doubling, `tries` times in all, unless the
 * error says trying again cannot help (malformed, forbidden); each failure is logged with what comes next.
 */
export function retryWithBackoff(
  firstDelayMs: number,
  tries: number,
  log: Logger,
): (failure: BackgroundFailure) => number | undefined {
  return ({ key, item, error, attempt }) => {
    const kind = asFunctionError(error).kind;
    const hopeless = kind === "malformed" || kind === "forbidden" || kind === "unauthenticated";
    const retryInMs = !hopeless && attempt < tries ? firstDelayMs * 2 ** (attempt - 1) : undefined;
    log.warn("queued work failed", { key, item, attempt, retryInMs, error: String(error) });
    return retryInMs;
  };
}

interface Waiter {
  start: () => void;
  /** Submitted work rather than a caller waiting in `run`: dropped once the limiter is closed. */
  submitted?: string;
}

/**
 * At most `limit` tasks in flight per key (a namespace, say), the rest waiting in arrival order. Two ways in:
 * `run` waits for its turn and for the task (the caller gets the result), `submit` never waits: it starts the
 * task if the key has a free slot and otherwise queues it, once per item (an item already queued is not queued
 * again: the task re-reads what it acts on when it runs). A limit of 0 means no limit.
 */
export class KeyedLimiter {
  private readonly inFlight = new Map<string, number>();
  private readonly waiting = new Map<string, Waiter[]>();
  private readonly queuedItems = new Set<string>();
  private readonly running = new Set<Promise<void>>();
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private closed = false;

  constructor(
    private readonly limit: number,
    private readonly options: KeyedLimiterOptions = {},
  ) {}

  async run<R>(key: string, task: () => Promise<R>): Promise<R> {
    if (this.limit <= 0) return task();
    if (this.hasSlot(key)) this.take(key);
    else await new Promise<void>((start) => this.enqueue(key, { start }));
    try {
      return await task();
    } finally {
      this.release(key);
    }
  }

  submit(key: string, item: string, task: () => Promise<unknown>, attempt = 1): Submitted {
    const id = `${key}\u0000${item}`;
    if (this.queuedItems.has(id)) return "coalesced";
    if (this.limit <= 0 || this.hasSlot(key)) {
      if (this.limit > 0) this.take(key);
      this.startInBackground(key, item, task, attempt);
      return "started";
    }
    this.queuedItems.add(id);
    this.enqueue(key, {
      submitted: id,
      start: () => {
        this.queuedItems.delete(id);
        this.startInBackground(key, item, task, attempt);
      },
    });
    return "queued";
  }

  /** Tasks running and waiting for a key (for tests and metrics). */
  load(key: string): { inFlight: number; waiting: number } {
    return { inFlight: this.inFlight.get(key) ?? 0, waiting: this.waiting.get(key)?.length ?? 0 };
  }

  /** Submitted work queued, for every key together. */
  get queued(): number {
    return this.queuedItems.size;
  }

  /**
   * Works through what is queued for up to `graceMs`, then stops starting submitted work (what is still queued
   * is dropped) and waits for what is already running.
   */
  async close(graceMs = 0): Promise<void> {
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && this.queuedItems.size > 0 && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.running].slice(0, 1)),
        new Promise((r) => (timer = setTimeout(r, Math.max(0, deadline - Date.now())))),
      ]);
      clearTimeout(timer);
    }
    this.closed = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    await Promise.allSettled([...this.running]);
  }

  private startInBackground(key: string, item: string, task: () => Promise<unknown>, attempt: number) {
    const done = (async () => {
      try {
        await task();
      } catch (error) {
        const retryInMs = this.options.onBackgroundFailure?.({ key, item, error, attempt });
        if (retryInMs !== undefined && !this.closed) {
          const timer = setTimeout(() => {
            this.retryTimers.delete(timer);
            if (!this.closed) this.submit(key, item, task, attempt + 1);
          }, retryInMs);
          timer.unref();
          this.retryTimers.add(timer);
        }
      } finally {
        if (this.limit > 0) this.release(key);
      }
    })();
    this.running.add(done);
    void done.finally(() => this.running.delete(done));
  }

  private hasSlot(key: string): boolean {
    return (this.inFlight.get(key) ?? 0) < this.limit;
  }

  private take(key: string) {
    this.inFlight.set(key, (this.inFlight.get(key) ?? 0) + 1);
  }

  private enqueue(key: string, waiter: Waiter) {
    const queue = this.waiting.get(key) ?? [];
    queue.push(waiter);
    this.waiting.set(key, queue);
  }

  private release(key: string) {
    const queue = this.waiting.get(key);
    let next = queue?.shift();
    while (next?.submitted && this.closed) {
      this.queuedItems.delete(next.submitted);
      next = queue?.shift();
    }
    if (queue?.length === 0) this.waiting.delete(key);
    if (next) return next.start(); // the slot passes straight to the next waiter of the same key
    const n = (this.inFlight.get(key) ?? 1) - 1;
    if (n > 0) this.inFlight.set(key, n);
    else this.inFlight.delete(key);
  }
}
