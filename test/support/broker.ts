// The test as Knative's delivery: post events to functions, keep what was answered 5xx (or never answered) and
// re-post it later, as a broker's redelivery would; 2xx and 4xx are final.
import { deliver } from "../../dev/events.ts";

export interface Delivery {
  /** Resolved at each attempt, so a restarted function (new URL) gets the redelivery. */
  target: () => string;
  event: { headers: Record<string, string>; body: string };
  /** the sending source's token (dev/events.ts sourceToken) */
  token: () => Promise<string>;
  label: string;
}

export interface BrokerStats {
  attempts: number;
  /** answered 5xx or not answered at all (connection refused, reset, killed mid-request) */
  failed: number;
  redeliveries: number;
  rejected: Array<{ label: string; status: number; body: unknown }>;
}

export class Broker {
  readonly stats: BrokerStats = { attempts: 0, failed: 0, redeliveries: 0, rejected: [] };
  private queue: Delivery[] = [];

  /** One attempt; a failure is queued for redelivery. Resolves with the status, or "no answer". */
  async send(d: Delivery): Promise<number | "no answer"> {
    this.stats.attempts++;
    const token = await d.token();
    try {
      const res = await deliver(d.target(), d.event, token);
      if (res.status >= 500) {
        this.stats.failed++;
        this.queue.push(d);
      } else if (res.status >= 400) {
        this.stats.rejected.push({ label: d.label, status: res.status, body: res.json });
      }
      return res.status;
    } catch {
      this.stats.failed++;
      this.queue.push(d);
      return "no answer";
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Re-posts everything that failed, round after round, until nothing is left or `rounds` are used up. */
  async redeliver({ rounds = 10, concurrency = 4, pauseMs = 500 } = {}): Promise<number> {
    let round = 0;
    while (this.queue.length > 0 && round < rounds) {
      round++;
      const batch = this.queue;
      this.queue = [];
      this.stats.redeliveries += batch.length;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(concurrency, batch.length) }, async () => {
          while (next < batch.length) await this.send(batch[next++]!);
        }),
      );
      if (this.queue.length > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
    return round;
  }
}
