// Reading a function's Prometheus metrics the way Prometheus does: GET /metrics, text format.

/** `name{b="2",a="1"}` → `name{a="1",b="2"}`: label order is not part of a series' identity. */
function canonical(series: string): string {
  const open = series.indexOf("{");
  if (open < 0) return series;
  const labels = series.slice(open + 1, -1).match(/[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*"/g) ?? [];
  return `${series.slice(0, open)}{${labels.sort().join(",")}}`;
}

/** Prometheus text → { "name{labels}": value } (labels sorted by name) for the lines whose name starts with `prefix`. */
export async function scrape(url: string, prefix = "service_ca_"): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(prefix)) continue;
    const i = line.lastIndexOf(" ");
    out.set(canonical(line.slice(0, i)), Number(line.slice(i + 1)));
  }
  return out;
}
