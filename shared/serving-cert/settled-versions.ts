// The object versions this process has settled (written, or judged current), so the event that echoes its own write
// costs one read instead of a reconcile: an object still at a version it settled is exactly what it made of it.
// Anything that changes the object changes its resourceVersion; a CA rotation is the scan's to fan out.

export type SettledKind = "Service" | "Secret";

export class SettledVersions {
  private readonly versions = new Map<string, string>();

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

  /** Forget an object (it was refused, or is being worked on again). */
  forget(kind: SettledKind, namespace: string, name: string): void {
    this.versions.delete(`${kind}/${namespace}/${name}`);
  }
}
