// Where the development system caches what it builds (Go binaries, images, .debs, bundles): the same directory
// dev/controlplane/build-binaries.sh uses, so one SERVICE_CA_CACHE moves all of it.
import { homedir } from "node:os";
import { join } from "node:path";

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.SERVICE_CA_CACHE ?? join(env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "service-ca-functions")
  );
}
