/**
 * Counts what a benchmark's upstream received, per key (a sink, a round's tag), and lets the
 * benchmark wait until a count is reached without polling.
 */
export class Arrivals {
  private readonly counts = new Map<string, number>();
  private readonly waiters: Array<{ key: string; n: number; resolve: () => void }> = [];

  add(key: string, n = 1): void {
    this.counts.set(key, this.of(key) + n);
    for (const w of [...this.waiters]) {
      if (this.of(w.key) >= w.n) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves once `key` has counted at least `n`. */
  reached(key: string, n: number): Promise<void> {
    if (this.of(key) >= n) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ key, n, resolve }));
  }

  private of(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}
