// The plugin's executable: kubectl finds `kubectl-service_ca` on the PATH and runs it for `kubectl service-ca`.
import { main } from "./main.ts";

void main(process.argv.slice(2), {
  out: (s) => process.stdout.write(s.endsWith("\n") ? s : `${s}\n`),
  err: (s) => process.stderr.write(s.endsWith("\n") ? s : `${s}\n`),
  now: () => new Date(),
}).then((code) => (process.exitCode = code));
