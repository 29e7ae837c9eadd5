// Writes are conditional on what was read; whoever loses a race decides again from a fresh read.
import { FunctionError } from "../runtime/errors.ts";

/** A write refused because the object changed since it was read (or appeared meanwhile). */
export const isWriteConflict = (err: unknown): boolean =>
  err instanceof FunctionError && err.kind === "conflict";

/**
 * Runs `decideAndWrite` (which must re-read everything it decides on) again while it ends in a write conflict,
 * `tries` times in all; any other error, or the last conflict, is thrown.
 */
export async function retryOnConflict<T>(
  tries: number,
  decideAndWrite: () => Promise<T>,
  onRetry: (attempt: number) => void = () => {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await decideAndWrite();
    } catch (err) {
      if (!isWriteConflict(err) || attempt >= tries) throw err;
      onRetry(attempt);
    }
  }
}
