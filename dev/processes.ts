// Child processes that cannot outlive us: each gets a watchdog that kills it when our end of a pipe closes,
// which happens however we exit (even SIGKILL). We stop only the PIDs we started.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, readFileSync } from "node:fs";
import { createServer } from "node:net";

export interface Tied {
  name: string;
  pid: number;
  /** Resolves with the exit code (or signal name) once the process has exited. */
  exited: Promise<number | string>;
  running(): boolean;
  stop(graceMs?: number): Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

export interface TiedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** stdout and stderr are appended here; without it they are inherited. */
  logFile?: string;
  onStdoutLine?: (line: string) => void;
}

export function spawnTied(name: string, command: string, args: string[], opts: TiedOptions = {}): Tied {
  const out = opts.logFile ? createWriteStream(opts.logFile, { flags: "a" }) : undefined;
  const child = spawn(command, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: ["ignore", out || opts.onStdoutLine ? "pipe" : "inherit", out ? "pipe" : "inherit"],
  });
  if (child.pid === undefined) throw new Error(`could not start ${name} (${command})`);
  const pid = child.pid;
  if (out) {
    child.stdout?.pipe(out, { end: false });
    child.stderr?.pipe(out, { end: false });
  }
  if (opts.onStdoutLine && child.stdout) {
    let buf = "";
    child.stdout.on("data", (chunk: Buffer) => {
      buf += chunk.toString("utf8");
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        opts.onStdoutLine!(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
  }
  const watchdog = spawn(
    "bash",
    [
      "-c",
      'trap "" INT HUP; read -r _; kill -TERM "$1" 2>/dev/null; sleep 3; kill -KILL "$1" 2>/dev/null',
      "watchdog",
      String(pid),
    ],
    { stdio: ["pipe", "ignore", "ignore"] },
  );
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void }).unref?.();

  let alive = true;
  const exited = new Promise<number | string>((resolve) => {
    child.once("exit", (code, signal) => {
      alive = false;
      watchdog.kill("SIGKILL");
      out?.end();
      resolve(code ?? signal ?? "unknown");
    });
  });
  return {
    name,
    pid,
    exited,
    running: () => alive,
    kill: (signal) => {
      if (alive) child.kill(signal);
    },
    stop: (graceMs = 10_000) => stopChild(child, exited, () => alive, graceMs),
  };
}

async function stopChild(
  child: ChildProcess,
  exited: Promise<unknown>,
  alive: () => boolean,
  graceMs: number,
) {
  if (!alive()) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => alive() && child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface WaitOptions {
  /** How long to wait for a target that shows no sign of life. */
  timeoutMs?: number;
  intervalMs?: number;
  /** A reason to give up at once (the process waited on has died). */
  failFast?: () => string | undefined;
  /**
   * True while the target is still making its way up (its process is alive and starting): the wait then goes
   * on past timeoutMs, up to maxMs, so a loaded machine slows a start without failing it.
   */
  progressing?: () => boolean;
  maxMs?: number;
}

export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  { timeoutMs = 60_000, intervalMs = 100, failFast, progressing, maxMs = timeoutMs * 10 }: WaitOptions = {},
): Promise<T> {
  const started = Date.now();
  let last: unknown;
  for (;;) {
    const reason = failFast?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    const waited = Date.now() - started;
    if (waited > timeoutMs && (!progressing?.() || waited > maxMs))
      throw new Error(`timed out after ${waited} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The last lines of a log file, for an error that says why a process died. */
export function tailOf(file: string, lines = 20): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}
