// The functions this repository ships: one folder each under functions/.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const functionsDir = join(import.meta.dirname, "../../functions");

export const functionNames = (): string[] =>
  readdirSync(functionsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(functionsDir, d.name, "index.ts")))
    .map((d) => d.name)
    .sort();
