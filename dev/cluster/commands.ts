// Host commands (ip, ctr, iptables, kubectl) run for their output or their effect. They never throw: the caller
// says what a failure means, since in a teardown most failures only mean the thing is already gone.
import { spawn } from "node:child_process";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function command(cmd: string, args: string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.once("error", (err) => resolve({ code: -1, stdout, stderr: String(err) }));
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** The command's stdout; an error naming the command and its stderr if it failed. */
export async function mustRun(cmd: string, args: string[]): Promise<string> {
  const r = await command(cmd, args);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}
