// One scan at a time per process, and at most one scan start per interval: whoever asks meanwhile gets the
// answer of the scan that is running, or of the last one. A flood of pings costs one scan, not one each.
import type { Clock } from "../runtime/clock.ts";

/** How an answer came about: a scan of its own, the scan that was running, or the last scan (rate limit). */
export type Coalesced = false | "joined" | "rate-limited";

export interface GateState {
  running?: { key: string };
  last?: { key: string; startedAt: number };
}

export type GateDecision = "start" | "join" | "wait" | "reuse";

/**
 * What a request for a scan of `key` does now. `key` names what the scan would be for (the kind of event and the
 * CA it was asked under): a scan for another key (a rotation's new CA) is never answered by an old one; it waits
 * for the running scan, then starts, however recent the last one.
 */
export function gateDecision(
  state: GateState,
  key: string,
  nowMs: number,
  minIntervalMs: number,
): GateDecision {
  if (state.running) return state.running.key === key ? "join" : "wait";
  if (state.last && state.last.key === key && nowMs - state.last.startedAt < minIntervalMs) return "reuse";
  return "start";
}

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

export class ScanGate<T> {
  private running?: { key: string; done: Promise<Settled<T>> };
  private last?: { key: string; startedAt: number; settled: Settled<T> };

  constructor(
    private readonly clock: Clock,
    private readonly minIntervalMs: number,
  ) {}

  /** Runs `scan` for `key`, or answers with the running or the last scan's result (or its error). */
  async run(key: string, scan: () => Promise<T>): Promise<{ result: T; coalesced: Coalesced }> {
    for (;;) {
      const now = this.clock.now().getTime();
      const decision = gateDecision({ running: this.running, last: this.last }, key, now, this.minIntervalMs);
      if (decision === "wait") {
        await this.running!.done;
        continue;
      }
      if (decision === "join") return { result: unwrap(await this.running!.done), coalesced: "joined" };
      if (decision === "reuse") return { result: unwrap(this.last!.settled), coalesced: "rate-limited" };
      // Set before the first await, so every request arriving from now on joins this scan.
      const done = settle(new Promise<T>((resolve) => resolve(scan()))).then((settled) => {
        this.running = undefined;
        this.last = { key, startedAt: now, settled };
        return settled;
      });
      this.running = { key, done };
      return { result: unwrap(await done), coalesced: false };
    }
  }
}

const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true as const, value }),
    (error: unknown) => ({ ok: false as const, error }),
  );

function unwrap<T>(s: Settled<T>): T {
  if (s.ok) return s.value;
  throw s.error;
}
