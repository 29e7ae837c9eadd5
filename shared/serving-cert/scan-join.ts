// The scan's join of annotated Services with our Secrets, both read a page at a time in the API server's list order
// (namespace, then name), so what is held is a page of Secrets and at most one namespace's annotated Services (a
// Secret whose Service has not come waits until the Services pass its namespace), not the cluster's, and the next
// page while those are judged.
//
// Only memory rests on that order. Out of order, a Service may be passed on without the Secret it names (its check
// then reads it, as for a Secret the label did not find), never skipped and never paired with another Secret.

/**
 * What the join keeps of an annotated Service: the Secret it asks for (in the Service's namespace) and `kept` (the
 * part judging reads).
 */
export interface Wanted<S> {
  secretName: string;
  kept: S;
}

export interface JoinSources<Svc, Sec, S> {
  /** The next page of Services; `undefined` after the last. */
  services: () => Promise<Svc[] | undefined>;
  /** The next page of our Secrets; `undefined` after the last. */
  secrets: () => Promise<Sec[] | undefined>;
  /** What an annotated Service asks for; `undefined` for a Service that asks for no Secret. */
  want: (svc: Svc) => Wanted<S> | undefined;
  namespaceOf: (svc: Svc) => string;
  where: (secret: Sec) => { namespace: string; name: string };
  /** Each Service wanting a Secret, once, with the Secret when the list had it. */
  judge: (pairs: Array<readonly [S, Sec | undefined]>) => Promise<void>;
}

export interface JoinStats {
  services: number;
  annotated: number;
  /** false when a list came out of the order the join expects (memory was then not bounded by a page) */
  inOrder: boolean;
  /** the most Services and Secrets held at once between pages (a namespace's Services and a page at most, in order) */
  mostHeld: number;
}

/**
 * Where a namespace comes in a list: the API server lists in key order (`<namespace>/<name>`), so namespace "a-b"
 * comes before "a" ('-' sorts before '/').
 */
const listOrder = (namespace: string) => `${namespace}/`;

/** How far one list has been read: a namespace is passed when every item of it has been read. */
class Frontier {
  private last = "";
  done = false;
  inOrder = true;

  saw(namespace: string): void {
    const at = listOrder(namespace);
    if (at < this.last) this.inOrder = false;
    else this.last = at;
  }

  passed(namespace: string): boolean {
    return this.done || listOrder(namespace) < this.last;
  }
}

export async function joinByNamespace<Svc, Sec, S>(src: JoinSources<Svc, Sec, S>): Promise<JoinStats> {
  const stats: JoinStats = { services: 0, annotated: 0, inOrder: true, mostHeld: 0 };
  const servicesRead = new Frontier();
  const secretsRead = new Frontier();
  // Services whose Secret has not come, by namespace and then by the Secret they name (two Services may name one:
  // one of them loses, which the check finds out).
  const wanting = new Map<string, Map<string, S[]>>();
  let wanted = 0;
  // Secrets whose Service has not come, in namespaces the Services have not passed.
  let held: Sec[] = [];

  const take = (namespace: string, name: string): S[] => {
    const byName = wanting.get(namespace);
    const found = byName?.get(name);
    if (!byName || !found) return [];
    byName.delete(name);
    if (byName.size === 0) wanting.delete(namespace);
    wanted -= found.length;
    return found;
  };

  // Pairs what can be paired now: held Secrets with their Services, and Services whose namespace the Secrets have
  // passed with nothing (no Secret of ours for them: missing, or a foreign one).
  const settle = (): Array<readonly [S, Sec | undefined]> => {
    stats.mostHeld = Math.max(stats.mostHeld, wanted + held.length);
    const pairs: Array<readonly [S, Sec | undefined]> = [];
    held = held.filter((secret) => {
      const { namespace, name } = src.where(secret);
      const services = take(namespace, name);
      for (const svc of services) pairs.push([svc, secret]);
      return services.length === 0 && !servicesRead.passed(namespace);
    });
    for (const [namespace, byName] of wanting) {
      if (!secretsRead.passed(namespace)) continue;
      for (const services of byName.values()) {
        wanted -= services.length;
        for (const svc of services) pairs.push([svc, undefined]);
      }
      wanting.delete(namespace);
    }
    return pairs;
  };

  const addServices = (page: Svc[] | undefined) => {
    if (page === undefined) return void (servicesRead.done = true);
    stats.services += page.length;
    for (const svc of page) {
      const namespace = src.namespaceOf(svc);
      servicesRead.saw(namespace);
      const w = src.want(svc);
      if (!w) continue;
      stats.annotated++;
      let byName = wanting.get(namespace);
      if (!byName) wanting.set(namespace, (byName = new Map()));
      byName.set(w.secretName, [...(byName.get(w.secretName) ?? []), w.kept]);
      wanted++;
    }
  };

  const addSecrets = (page: Sec[] | undefined) => {
    if (page === undefined) return void (secretsRead.done = true);
    for (const secret of page) secretsRead.saw(src.where(secret).namespace);
    held.push(...page);
  };

  // Secrets are read while Services wait for them and none of the Secrets read still waits for its Service;
  // Services otherwise. Once every Service has been read and matched, the remaining Secrets are nobody's concern.
  // Each page asked for comes with what adds it to what the join holds, applied once the pairs before it are judged.
  const nextPage = (): Promise<() => void> | undefined => {
    if (servicesRead.done && (wanted === 0 || secretsRead.done)) return undefined;
    const page =
      servicesRead.done || (!secretsRead.done && held.length === 0 && wanted > 0)
        ? src.secrets().then((items) => () => addSecrets(items))
        : src.services().then((items) => () => addServices(items));
    page.catch(() => undefined); // answered below, after the pairs in hand are judged
    return page;
  };

  // Which page comes next depends only on what has been read, not on the verdicts: it is asked for before the
  // pairs in hand are judged, so the API server answers while this process judges (one page more in memory).
  for (let page = nextPage(); page;) {
    (await page)();
    const pairs = settle();
    page = nextPage();
    await src.judge(pairs);
  }
  stats.inOrder = servicesRead.inOrder && secretsRead.inOrder;
  return stats;
}
