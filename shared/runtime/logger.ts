// Structured JSON logs, one object per line, to stdout (the platform collects them).

export type LogLevel = "debug" | "info" | "warn" | "error";
const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line + "\n"),
): Logger {
  const emit = (at: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[at] < order[level]) return;
    write(
      JSON.stringify({
        time: new Date().toISOString(),
        level: at,
        msg: capText(msg),
        ...(capped(base) as Record<string, unknown>),
        ...(capped(fields ?? {}) as Record<string, unknown>),
      }),
    );
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/** The most characters of one quoted value a log line, an Event or an annotation carries. */
export const QUOTE_LIMIT = 256;
const ITEM_LIMIT = 100;

/**
 * `text` cut to `max` characters, saying how much was left out: whatever a user or an event puts in a value (a
 * 200 KB annotation) is quoted at most this long. The one place quotes are capped: the logger applies it to every
 * string it writes, and messages meant for Events and annotations use it too.
 */
export function capText(text: string, max = QUOTE_LIMIT): string {
  if (text.length <= max) return text;
  // Never cut a surrogate pair in two: half of one is not valid UTF-16.
  const end = /[\uD800-\uDBFF]/.test(text[max - 1]!) ? max - 1 : max;
  const head = text.slice(0, end);
  return `${head}…(+${Buffer.byteLength(text) - Buffer.byteLength(head)} bytes)`;
}

/** Every string in `value` capped, arrays cut to ITEM_LIMIT items, Errors as name and message. */
function capped(value: unknown, depth = 0): unknown {
  if (typeof value === "string") return capText(value);
  if (value instanceof Error) return { name: value.name, message: capText(value.message) };
  if (value === null || typeof value !== "object" || depth > 8) return value;
  if (Array.isArray(value)) {
    const items = value.slice(0, ITEM_LIMIT).map((v) => capped(v, depth + 1));
    return value.length > ITEM_LIMIT ? [...items, `…(+${value.length - ITEM_LIMIT} items)`] : items;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return value; // Dates and the like serialize themselves
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, capped(v, depth + 1)]));
}
