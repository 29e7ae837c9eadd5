// The object versions this process has settled (written, or judged current), so the event that echoes its own write
// costs one read at most (none when the event carries the version) instead of a reconcile: an object still at a
// version it settled is exactly what it made of it.
// Anything that changes the object changes its resourceVersion; a CA rotation is the scan's to fan out.
// A Secret this process created is also expected to come back once as an `add` (Reference mode carries no
// version): that echo says nothing a later update or delete event would not, so it costs no request at all.

export type SettledKind = "Service" | "Secret";

/** How long after its create the `add` echoing it is still taken for the echo (a relist later is judged). */
export const CREATE_ECHO_MS = 60_000;

export class SettledVersions {
  private readonly versions = new Map<string, string>();
  /** Secrets this process created, by when, whose `add` event has not come back yet. */
  private readonly createdAt = new Map<string, number>();

  /** At most `capacity` objects are remembered; the oldest are forgotten first (and then merely cost a reconcile). */
  constructor(private readonly capacity = 20_000) {}

  settle(kind: SettledKind, namespace: string, name: string, resourceVersion: string | undefined): void {
    if (!resourceVersion) return;
    const key = `${kind}/${namespace}/${name}`;
    this.versions.delete(key);
    this.versions.set(key, resourceVersion);
    if (this.versions.size > this.capacity) this.versions.delete(this.versions.keys().next().value!);
  }

  isSettled(
    kind: SettledKind,
    namespace: string,
    name: string,
    resourceVersion: string | undefined,
  ): boolean {
    return (
      resourceVersion !== undefined && this.versions.get(`${kind}/${namespace}/${name}`) === resourceVersion
    );
  }

  /** Forget an object (it was refused, deleted, or is being worked on again). */
  forget(kind: SettledKind, namespace: string, name: string): void {
    this.versions.delete(`${kind}/${namespace}/${name}`);
    if (kind === "Secret") this.createdAt.delete(`${namespace}/${name}`);
  }

  /** This process just created the Secret: the one `add` event that echoes it needs no read. */
  created(namespace: string, name: string, now: number): void {
    const key = `${namespace}/${name}`;
    this.createdAt.delete(key);
    this.createdAt.set(key, now);
    if (this.createdAt.size > this.capacity) this.createdAt.delete(this.createdAt.keys().next().value!);
  }

  /**
   * Whether an `add` event for this Secret is the echo of this process's own create, recent enough: true once
   * per create. A delete in between forgets it, so a Secret someone re-created is judged in full.
   */
  takeCreateEcho(namespace: string, name: string, now: number): boolean {
    const key = `${namespace}/${name}`;
    const at = this.createdAt.get(key);
    if (at === undefined) return false;
    this.createdAt.delete(key);
    return now - at <= CREATE_ECHO_MS;
  }
}
