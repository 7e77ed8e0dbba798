/**
 * A set of IMAP UIDs kept as sorted, disjoint ranges, so that a folder's UIDs (mostly one run with a
 * few holes) and its unseen UIDs (a few scattered ones) cost a few numbers each instead of one per
 * message. Serialised as an IMAP sequence set ("1:40,42,45:99"), which is also how the checkpoint
 * stores it. Good for the sizes a watcher keeps (tens of thousands of UIDs, ranges in the hundreds);
 * insertions and deletions in the middle copy the range array.
 */

export class UidSet {
  /** Flat [start0, end0, start1, end1, …], sorted, disjoint and not adjacent. */
  private r: number[];

  private constructor(ranges: number[]) {
    this.r = ranges;
  }

  static empty(): UidSet {
    return new UidSet([]);
  }

  /** From UIDs in any order (duplicates allowed). */
  static of(uids: Iterable<number>): UidSet {
    const sorted = [...uids].sort((a, b) => a - b);
    const r: number[] = [];
    for (const u of sorted) {
      const n = r.length;
      if (n > 0 && u <= r[n - 1]! + 1) r[n - 1] = Math.max(r[n - 1]!, u);
      else r.push(u, u);
    }
    return new UidSet(r);
  }

  /** Parses "1:40,42"; throws on anything else. */
  static parse(text: string): UidSet {
    if (text === '') return UidSet.empty();
    const r: number[] = [];
    for (const part of text.split(',')) {
      const m = /^(\d+)(?::(\d+))?$/.exec(part);
      if (!m) throw new Error(`not a UID set: ${text.slice(0, 40)}`);
      const a = Number(m[1]);
      const b = m[2] === undefined ? a : Number(m[2]);
      if (b < a || (r.length > 0 && a <= r[r.length - 1]! + 1)) throw new Error(`UID set out of order: ${text.slice(0, 40)}`);
      r.push(a, b);
    }
    return new UidSet(r);
  }

  clone(): UidSet {
    return new UidSet(this.r.slice());
  }

  toString(): string {
    const parts: string[] = [];
    for (let i = 0; i < this.r.length; i += 2) parts.push(this.r[i] === this.r[i + 1] ? String(this.r[i]) : `${this.r[i]}:${this.r[i + 1]}`);
    return parts.join(',');
  }

  get size(): number {
    let n = 0;
    for (let i = 0; i < this.r.length; i += 2) n += this.r[i + 1]! - this.r[i]! + 1;
    return n;
  }

  /** Number of ranges (what the set costs in memory). */
  get ranges(): number {
    return this.r.length / 2;
  }

  /** Index of the range holding uid, or -1. */
  private find(uid: number): number {
    let lo = 0;
    let hi = this.r.length / 2 - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (uid < this.r[2 * mid]!) hi = mid - 1;
      else if (uid > this.r[2 * mid + 1]!) lo = mid + 1;
      else return mid;
    }
    return -1;
  }

  has(uid: number): boolean {
    return this.find(uid) >= 0;
  }

  add(uid: number): void {
    if (this.has(uid)) return;
    // Appending at the end is the common case (new mail).
    const n = this.r.length;
    if (n === 0 || uid > this.r[n - 1]! + 1) {
      this.r.push(uid, uid);
      return;
    }
    if (uid === this.r[n - 1]! + 1) {
      this.r[n - 1] = uid;
      return;
    }
    this.r = UidSet.of([...this, uid]).r;
  }

  delete(uid: number): boolean {
    const i = this.find(uid);
    if (i < 0) return false;
    const a = this.r[2 * i]!;
    const b = this.r[2 * i + 1]!;
    if (a === b) this.r.splice(2 * i, 2);
    else if (uid === a) this.r[2 * i] = a + 1;
    else if (uid === b) this.r[2 * i + 1] = b - 1;
    else this.r.splice(2 * i, 2, a, uid - 1, uid + 1, b);
    return true;
  }

  *[Symbol.iterator](): Iterator<number> {
    for (let i = 0; i < this.r.length; i += 2) for (let u = this.r[i]!; u <= this.r[i + 1]!; u++) yield u;
  }
}
