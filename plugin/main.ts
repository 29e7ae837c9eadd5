// kubectl service-ca: the service CA as a platform team sees it, with the user's kubeconfig and rights.
import { parseArgs } from "node:util";
import { EXIT, loadKubeConfig, PluginError } from "./access.ts";
import { healthy, printStatus, status } from "./status.ts";
import { checkService, printService } from "./check-service.ts";
import { inspectSecret, printSecret } from "./inspect-secret.ts";
import { printRotation, rotate } from "./rotate.ts";

export const HELP = `kubectl service-ca: operate service-ca-functions

Usage:
  kubectl service-ca status                         the CA(s), the next rotation, the published bundle,
                                                    functions' and sources' readiness, Services' certificates
  kubectl service-ca check service <ns>/<name>      why this Service has, or has not, its certificate
  kubectl service-ca inspect secret <ns>/<name>     a serving Secret decoded, verified against the bundle
  kubectl service-ca rotate --reason <text> [--mode overlap|replace] [--dry-run] [--url <rotate-ca URL>]
                                                    force a rotation through rotate-ca, with your token

Options:
  --kubeconfig <path>   kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config)
  --context <name>      kubeconfig context to use
  -o, --output json     machine-readable output
  -h, --help            this help

Exit codes: 0 ok; 1 a problem was found (no valid certificate, unhealthy system); 2 usage;
3 a right is missing (the message names it); 4 any other error.
`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  now: () => Date;
}

const nsName = (arg: string | undefined, what: string) => {
  const m = /^([a-z0-9-]+)\/([a-z0-9.-]+)$/.exec(arg ?? "");
  if (!m) throw new PluginError(`${what} <namespace>/<name> expected, got ${arg ?? "nothing"}`, EXIT.usage);
  return [m[1]!, m[2]!] as const;
};

export async function main(argv: string[], io: Io): Promise<number> {
  try {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          kubeconfig: { type: "string" },
          context: { type: "string" },
          output: { type: "string", short: "o" },
          help: { type: "boolean", short: "h" },
          reason: { type: "string" },
          mode: { type: "string", default: "overlap" },
          "dry-run": { type: "boolean", default: false },
          url: { type: "string" },
        },
      });
    } catch (err) {
      throw new PluginError(`${(err as Error).message}\n\n${HELP}`, EXIT.usage);
    }
    const {
      values: o,
      positionals: [cmd, ...rest],
    } = parsed;
    if (o.help || !cmd) {
      (o.help ? io.out : io.err)(HELP);
      return o.help ? EXIT.ok : EXIT.usage;
    }
    if (o.output !== undefined && o.output !== "json")
      throw new PluginError("-o supports json only", EXIT.usage);
    const json = o.output === "json";
    const show = (value: unknown, text: string) => io.out(json ? JSON.stringify(value, null, 2) : text);
    const kc = () => loadKubeConfig({ kubeconfig: o.kubeconfig, context: o.context });
    switch (cmd) {
      case "status": {
        const s = await status(kc(), io.now());
        show(s, printStatus(s));
        return healthy(s) ? EXIT.ok : EXIT.finding;
      }
      case "check": {
        if (rest[0] !== "service")
          throw new PluginError("usage: kubectl service-ca check service <ns>/<name>", EXIT.usage);
        const [ns, name] = nsName(rest[1], "check service");
        const r = await checkService(kc(), ns, name, io.now());
        show(r, printService(r));
        return r.ok ? EXIT.ok : EXIT.finding;
      }
      case "inspect": {
        if (rest[0] !== "secret")
          throw new PluginError("usage: kubectl service-ca inspect secret <ns>/<name>", EXIT.usage);
        const [ns, name] = nsName(rest[1], "inspect secret");
        const r = await inspectSecret(kc(), ns, name, io.now());
        show(r, printSecret(r));
        return r.valid ? EXIT.ok : EXIT.finding;
      }
      case "rotate": {
        if (!o.reason?.trim())
          throw new PluginError(
            "rotate needs --reason <text> (it is recorded on the CA Secret and its Event)",
            EXIT.usage,
          );
        if (o.mode !== "overlap" && o.mode !== "replace")
          throw new PluginError("--mode is overlap or replace", EXIT.usage);
        const r = await rotate(kc(), {
          reason: o.reason,
          mode: o.mode,
          dryRun: o["dry-run"] ?? false,
          url: o.url,
        });
        show(r, printRotation(r));
        return EXIT.ok;
      }
      default:
        throw new PluginError(`unknown command ${cmd}\n\n${HELP}`, EXIT.usage);
    }
  } catch (err) {
    if (err instanceof PluginError) {
      io.err(`error: ${err.message}`);
      return err.code;
    }
    io.err(`error: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT.error;
  }
}
