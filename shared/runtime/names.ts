// The functions this repository ships: one folder each under functions/.
import { readdirSync } from "node:fs";
import { join } from "node:path";

export const functionsDir = join(import.meta.dirname, "../../functions");

export const functionNames = (): string[] =>
  readdirSync(functionsDir, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
