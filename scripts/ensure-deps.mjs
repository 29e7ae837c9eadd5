// Runs `npm ci` when node_modules is missing or older than package-lock.json, so the README's commands
// work on a fresh clone with nothing installed by hand.
import { execSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";

const stamp = "node_modules/.service-ca-lock-hash";
const want = createHash("sha256").update(readFileSync("package-lock.json")).digest("hex");
const have = existsSync(stamp) ? readFileSync(stamp, "utf8") : "";
if (want !== have) {
  console.error("installing npm dependencies (npm ci)...");
  execSync("npm ci --no-audit --no-fund --loglevel=error", { stdio: "inherit" });
  writeFileSync(stamp, want);
}
