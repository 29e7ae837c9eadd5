// Kubernetes label selectors in kubectl's text form (`tier=web,env in (prod,stage),!legacy`): parse and match.

export type Requirement =
  { key: string; op: "in" | "notin"; values: string[] } | { key: string; op: "exists" | "doesNotExist" };

export interface LabelSelector {
  /** The text it was parsed from, normalised ("" selects everything). */
  text: string;
  requirements: Requirement[];
}

export class SelectorError extends Error {
  override name = "SelectorError";
}

const NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function checkKey(key: string): string {
  const slash = key.lastIndexOf("/");
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !PREFIX.test(prefix)))
    throw new SelectorError(`label key ${JSON.stringify(key)}: the prefix must be a DNS subdomain`);
  if (name.length > 63 || !NAME.test(name))
    throw new SelectorError(
      `label key ${JSON.stringify(key)}: the name must be 1-63 letters, digits, '-', '_' or '.', starting and ending alphanumeric`,
    );
  return key;
}

function checkValue(value: string): string {
  if (value !== "" && (value.length > 63 || !NAME.test(value)))
    throw new SelectorError(
      `label value ${JSON.stringify(value)}: at most 63 letters, digits, '-', '_' or '.', starting and ending alphanumeric`,
    );
  return value;
}

/** Commas inside `( )` belong to a value set, not to the list of requirements. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    if (depth < 0 || depth > 1) throw new SelectorError(`unbalanced parentheses in ${JSON.stringify(text)}`);
    if (c === "," && depth === 0) {
      terms.push(text.slice(start, i));
      start = i + 1;
    }
  }
  if (depth !== 0) throw new SelectorError(`unbalanced parentheses in ${JSON.stringify(text)}`);
  terms.push(text.slice(start));
  return terms.map((t) => t.trim());
}

function parseTerm(term: string): Requirement {
  if (term === "") throw new SelectorError("empty requirement (a stray comma?)");
  let m = /^!\s*(\S+)$/.exec(term);
  if (m) return { key: checkKey(m[1]!), op: "doesNotExist" };
  m = /^(\S+?)\s+(in|notin)\s*\((.*)\)$/.exec(term);
  if (m) {
    const values = m[3]!.split(",").map((v) => checkValue(v.trim()));
    if (values.length === 1 && values[0] === "")
      throw new SelectorError(`${JSON.stringify(term)}: '${m[2]}' needs at least one value`);
    return { key: checkKey(m[1]!), op: m[2] as "in" | "notin", values: [...new Set(values)] };
  }
  m = /^([^=!\s]+)\s*(==|=|!=)\s*([^=!\s]*)$/.exec(term);
  if (m) return { key: checkKey(m[1]!), op: m[2] === "!=" ? "notin" : "in", values: [checkValue(m[3]!)] };
  if (/^[^\s=!(),]+$/.test(term)) return { key: checkKey(term), op: "exists" };
  throw new SelectorError(
    `cannot parse ${JSON.stringify(term)}: expected key, !key, key=value, key!=value, key in (v1,v2) or key notin (v1,v2)`,
  );
}

export function parseLabelSelector(text: string): LabelSelector {
  const trimmed = text.trim();
  if (trimmed === "") return { text: "", requirements: [] };
  const requirements = splitTerms(trimmed).map(parseTerm);
  return { text: requirements.map(formatRequirement).join(","), requirements };
}

function formatRequirement(r: Requirement): string {
  switch (r.op) {
    case "exists":
      return r.key;
    case "doesNotExist":
      return `!${r.key}`;
    default:
      return r.values.length === 1
        ? `${r.key}${r.op === "in" ? "=" : "!="}${r.values[0]}`
        : `${r.key} ${r.op} (${r.values.join(",")})`;
  }
}

/** As the API server matches: every requirement holds; `!=` and `notin` also hold when the label is absent. */
export function selectorMatches(
  selector: LabelSelector,
  labels: Record<string, string> | undefined,
): boolean {
  const l = labels ?? {};
  return selector.requirements.every((r) => {
    const has = Object.hasOwn(l, r.key);
    switch (r.op) {
      case "exists":
        return has;
      case "doesNotExist":
        return !has;
      case "in":
        return has && r.values.includes(l[r.key]!);
      case "notin":
        return !has || !r.values.includes(l[r.key]!);
    }
  });
}
