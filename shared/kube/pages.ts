// Reading a list a page at a time (`limit` + `continue`), so a scan of thousands of objects holds one page.
import { classifyKubeError, type Kube } from "./client.ts";
import type { Query } from "./rest.ts";

/** One page of a list, and the token that asks for the next one (none after the last). */
export type ListPage<T> = (cont?: string) => Promise<{ items: T[]; continue?: string }>;

/** The page reader of a collection's REST path (`query`: selectors and page size). */
export const listPage =
  <T>(kube: Kube, path: string, query: Query = {}): ListPage<T> =>
  async (cont) => {
    const list = await kube.rest<{ items?: T[] | null; metadata?: { continue?: string } }>({
      method: "GET",
      path,
      query: { ...query, continue: cont },
    });
    return { items: list.items ?? [], continue: list.metadata?.continue };
  };

/**
 * A list read one page per call, by whoever decides when: each call answers the next page, `undefined` after the
 * last; an API error becomes a typed error naming what was listed. `pages` counts the requests made.
 */
export function pageReader<T>(
  what: string,
  page: ListPage<T>,
): { next: () => Promise<T[] | undefined>; pages: number } {
  let cont: string | undefined;
  let done = false;
  const reader = {
    pages: 0,
    next: async (): Promise<T[] | undefined> => {
      if (done) return undefined;
      let list;
      try {
        list = await page(cont);
      } catch (err) {
        throw classifyKubeError(err, `list ${what}`);
      }
      reader.pages++;
      cont = list.continue || undefined;
      done = !cont;
      return list.items;
    },
  };
  return reader;
}

/** Calls `each` with every page in turn; an API error becomes a typed error naming what was listed. */
export async function forEachPage<T>(
  what: string,
  page: ListPage<T>,
  each: (items: T[]) => Promise<void> | void,
): Promise<number> {
  const reader = pageReader(what, page);
  for (let items = await reader.next(); items; items = await reader.next()) await each(items);
  return reader.pages;
}

/** Every item of every page, for lists known to be small. */
export async function listAll<T>(what: string, page: ListPage<T>): Promise<T[]> {
  const items: T[] = [];
  await forEachPage(what, page, (p) => void items.push(...p));
  return items;
}
