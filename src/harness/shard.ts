/**
 * Deterministic sharding: `--shard i/n` keeps the same tests on the same shard on every machine.
 * Tests are sorted by id (path) and dealt round-robin, so shards stay balanced in count and the split does
 * not depend on the order files were given in.
 */

export interface ShardSpec {
  /** 1-based. */
  index: number;
  total: number;
}

export function parseShard(text: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new Error(`--shard wants i/n (e.g. 2/4), got ${JSON.stringify(text)}`);
  const index = Number(m[1]);
  const total = Number(m[2]);
  if (total < 1 || index < 1 || index > total) throw new Error(`--shard ${text}: need 1 <= i <= n`);
  return { index, total };
}

export function shardItems<T>(items: readonly T[], shard: ShardSpec | null | undefined, id: (t: T) => string): T[] {
  if (!shard || shard.total === 1) return [...items];
  const sorted = [...items].sort((a, b) => (id(a) < id(b) ? -1 : id(a) > id(b) ? 1 : 0));
  return sorted.filter((_, i) => i % shard.total === shard.index - 1);
}
