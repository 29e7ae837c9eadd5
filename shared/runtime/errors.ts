// Errors as values with a kind; the runtime maps each kind to one HTTP status, in one place.

export type ErrorKind =
  "malformed" | "unauthenticated" | "forbidden" | "notFound" | "conflict" | "transient" | "internal";

export class FunctionError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "FunctionError";
  }
}

export const malformed = (message: string, details?: unknown) =>
  new FunctionError("malformed", message, details);
export const forbidden = (message: string, details?: unknown) =>
  new FunctionError("forbidden", message, details);
export const transient = (message: string, cause?: unknown) =>
  new FunctionError("transient", message, undefined, { cause });

/**
 * 4xx tells the broker not to redeliver (the event itself is wrong or not allowed);
 * 5xx asks for redelivery (the world may be different next time).
 */
export function httpStatusFor(kind: ErrorKind): number {
  switch (kind) {
    case "malformed":
      return 400;
    case "unauthenticated":
      return 401;
    case "forbidden":
      return 403;
    case "notFound":
      return 404;
    case "conflict":
    case "transient":
      return 503;
    case "internal":
      return 500;
  }
}

export function asFunctionError(err: unknown): FunctionError {
  if (err instanceof FunctionError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new FunctionError("internal", message, undefined, { cause: err });
}
