// Configuration from environment variables and --flags, validated with zod before anything starts.
import * as z from "zod";

/** Each key is an environment variable; `--lower-kebab-case` of it is the matching flag. */
export type ConfigShape = Record<string, z.ZodType>;

const logLevel = z.enum(["debug", "info", "warn", "error"]);
const port = z.coerce.number().int().min(0).max(65535);

/** BODY_LIMIT_BYTES, with the default a function needs (one whose events carry whole objects needs more). */
export const bodyLimitBytes = (defaultBytes: number) =>
  z.coerce
    .number()
    .int()
    .positive()
    .default(defaultBytes)
    .describe("largest request body accepted (413 above it)");

export const runtimeConfigShape = {
  PORT: port.default(8080).describe("HTTP port (Knative Serving sets it; FUNC_PORT is read too)"),
  LOG_LEVEL: logLevel.default("info").describe("debug | info | warn | error (FUNC_LOG_LEVEL is read too)"),
  KUBECONFIG: z
    .string()
    .optional()
    .describe("kubeconfig for local runs; unset means in-cluster ServiceAccount credentials"),
  BODY_LIMIT_BYTES: bodyLimitBytes(1024 * 1024),
  REQUEST_TIMEOUT_SECONDS: z.coerce
    .number()
    .positive()
    .default(30)
    .describe("a request still running after this answers 503 so the broker redelivers"),
  SHUTDOWN_TIMEOUT_SECONDS: z.coerce
    .number()
    .nonnegative()
    .default(20)
    .describe("on SIGTERM, how long in-flight requests may take before the process exits"),
} satisfies ConfigShape;

export type RuntimeConfig = z.infer<z.ZodObject<typeof runtimeConfigShape>>;

const aliases: Record<string, string> = { FUNC_PORT: "PORT", FUNC_LOG_LEVEL: "LOG_LEVEL" };

export const flagFor = (envName: string) => "--" + envName.toLowerCase().replaceAll("_", "-");

export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface ParsedArgs {
  help: boolean;
  values: Record<string, string>;
}

/** Reads env, then flags (flags win). Unknown flags are an error, not a silent typo. */
export function readRawConfig(shape: ConfigShape, argv: string[], env: NodeJS.ProcessEnv): ParsedArgs {
  const values: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const v = env[key];
    if (v !== undefined && v !== "") values[key] = v;
  }
  for (const [alias, key] of Object.entries(aliases)) {
    const v = env[alias];
    if (key in shape && v !== undefined && v !== "" && values[key] === undefined) values[key] = v;
  }
  const byFlag = new Map(Object.keys(shape).map((k) => [flagFor(k), k]));
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--help" || arg === "-h") {
      help = true;
      continue;
    }
    const [flag, inline] = arg.split(/=(.*)/s, 2) as [string, string | undefined];
    const key = byFlag.get(flag);
    if (!key) throw new ConfigError(`unknown argument ${JSON.stringify(arg)} (see --help)`);
    const value = inline ?? argv[++i];
    if (value === undefined) throw new ConfigError(`${flag} needs a value`);
    values[key] = value;
  }
  return { help, values };
}

export function parseConfig<S extends ConfigShape>(
  shape: S,
  raw: Record<string, string>,
): z.infer<z.ZodObject<S>> {
  const result = z.object(shape).safeParse(raw);
  if (result.success) return result.data as z.infer<z.ZodObject<S>>;
  const problems = result.error.issues.map((issue) => {
    const key = String(issue.path[0] ?? "");
    return `  ${key} (${flagFor(key)}): ${issue.message}`;
  });
  throw new ConfigError(`invalid configuration:\n${problems.join("\n")}`);
}

export function helpText(name: string, description: string, shape: ConfigShape): string {
  const lines = [
    `${name}: ${description}`,
    "",
    `Usage: node --import tsx shared/host/main.ts ${name} [flags]`,
    "",
    "Every setting is an environment variable or the matching flag (flags win):",
  ];
  for (const [key, field] of Object.entries(shape)) {
    const fallback = field.safeParse(undefined);
    const def =
      fallback.success && fallback.data !== undefined ? ` (default ${JSON.stringify(fallback.data)})` : "";
    lines.push(`  ${key.padEnd(28)} ${flagFor(key)}`, `      ${field.description ?? ""}${def}`);
  }
  return lines.join("\n");
}
