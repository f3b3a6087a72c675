/**
 * What grows with the context, piece by piece, without running phase 1: for each context N (Star,
 * b = a = --block, --hosts hosts; the bench shape's KV layout), the time and size of every piece of
 * the request path that depends on N:
 *   - seeded random context (`randomTokenIds`) and its hash (`contextHash`, as the client computes it);
 *   - block planning (`planMode`), the blocks' phase-1 inputs (`phase1Tokens`), the FLOP count;
 *   - Redis: storing the context once; what K block jobs read back — the whole context each
 *     (`fetchContextIds`) vs only their segments (`fetchContextSegments`, what host actors do);
 *   - the KV directory: K records written (`putEncoded`), read (`getMany`), touched, removed, and
 *     their size in Redis (`MEMORY USAGE`);
 *   - msgpack sizes of the messages whose content grows with K (request job, a host's attendMany
 *     call and reply for its K/H blocks), against the claim-check inline limit, and the claim-check
 *     round trip (park + publish + GETDEL) at those sizes;
 *   - the phase-2 merge: `mergePartials` over K block partials (decode: 1 row; query chunk: 16 rows);
 *   - per host: KV bytes held (its blocks + its anchor).
 * Each timing is the median of --reps runs. Redis at --redis (default 127.0.0.1:6379) under a
 * random key prefix, deleted at the end.
 *
 *   npx tsx bench/scale.ts [--contexts 65536,262144,1048576] [--block 16384] [--hosts 2] [--reps 5] [--json FILE]
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { randomBytes } from 'node:crypto';
import { blockCacheId, mergePartials, phase1Tokens, planMode, type Partial } from '@starq/attention';
import { closeRedis, createRedis, deleteKeysByPrefix, DEFAULT_INLINE_LIMIT_BYTES, publishMessage, resolveMessage } from '@starq/actors';
import { fetchContextIds, fetchContextSegments, KvDirectory, storeContextIds } from '@starq/cluster';
import { phase1Flops } from '@starq/model/perf/flops';
import { kvBytesPerToken } from '@starq/model/runtime/kv-cache';
import { randomTokenIds } from '@starq/model/synthetic/token-ids';
import type { ModelConfig } from '@starq/model/types';
import { contextHash, encode, message, RedisKeys } from '@starq/protocol';
import { markdownTable, type Column } from '@starq/report';
import { argStr } from './lib/args';

/** The bench shape (hidden 256, 4 layers, 8 heads, 2 KV heads, head dim 32, vocab 512). */
const SHAPE = { architecture: 'llama', hiddenSize: 256, intermediateSize: 688, numLayers: 4, numHeads: 8, numKvHeads: 2, headDim: 32, vocabSize: 512 } as unknown as ModelConfig;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timeMs(reps: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await fn();
    t.push(performance.now() - t0);
  }
  return median(t);
}

function partial(H: number, T: number, D: number, seed: number): Partial {
  const o = Float32Array.from({ length: H * T * D }, (_, i) => Math.sin(i * 0.37 + seed));
  const lse = Float32Array.from({ length: H * T }, (_, i) => 5 + Math.cos(i + seed * 1.7));
  return { o, lse, heads: H, rows: T, headDim: D };
}

async function main(): Promise<void> {
  const contexts = argStr('--contexts', '65536,262144,1048576').split(',').map(Number);
  const b = Number(argStr('--block', '16384'));
  const hosts = Number(argStr('--hosts', '2'));
  const reps = Number(argStr('--reps', '5'));
  const jsonOut = argStr('--json', '');
  const redisUrl = argStr('--redis', 'redis://127.0.0.1:6379');
  const keys = new RedisKeys(`starq-scale-${randomBytes(4).toString('hex')}`);
  const redis = await createRedis(redisUrl);
  const directory = new KvDirectory(redis, keys);
  const { numHeads: H, headDim: D } = SHAPE;
  const loadBefore = os.loadavg()[0];
  const rows: Record<string, number | string>[] = [];
  const add = (piece: string, unit: string, values: number[]) => rows.push({ piece, unit, ...Object.fromEntries(values.map((v, i) => [`n${i}`, v])) });
  const per: Record<string, number[]> = {};
  const put = (k: string, v: number) => (per[k] ??= []).push(v);
  try {
    for (const N of contexts) {
      process.stderr.write(`[scale] N = ${N}\n`);
      let ids: number[] = [];
      put('ids', await timeMs(reps, () => (ids = randomTokenIds(N, SHAPE.vocabSize, 7919 * 0 + N, 3))));
      put('hash', await timeMs(reps, () => contextHash(ids)));
      let plan = planMode('star', N, { blockSize: b, anchorSize: b, hosts });
      put('plan', await timeMs(reps, () => (plan = planMode('star', N, { blockSize: b, anchorSize: b, hosts }))));
      const K = plan.numBlocks;
      put('blocks', K);
      let inputBytes = 0;
      put('inputs', await timeMs(reps, () => {
        inputBytes = 0;
        for (const blk of plan.blocks) inputBytes += Int32Array.from(phase1Tokens(ids, blk.phase1)).byteLength * 2; // ids + positions
      }));
      put('inputBytes', inputBytes / 2 ** 20);
      put('flops', await timeMs(reps, () => phase1Flops(SHAPE, 'star', plan)));

      const hash = contextHash(ids);
      put('store', await timeMs(reps, () => storeContextIds(redis, keys, hash, ids, 600)));
      put('readWhole', await timeMs(reps, async () => {
        for (let k = 0; k < K; k++) await fetchContextIds(redis, keys, hash);
      }));
      put('readWholeMb', (K * N * 4) / 2 ** 20);
      put('readSeg', await timeMs(reps, async () => {
        for (const blk of plan.blocks) await fetchContextSegments(redis, keys, hash, blk.phase1.segments, N);
      }));
      put('readSegMb', plan.blocks.reduce((s, blk) => s + blk.phase1.length * 4, 0) / 2 ** 20);

      const ctxKey = `ctx:bench:star:b${b}:a${b}:${hash}`;
      const cacheIds = plan.blocks.map((blk) => blockCacheId(ctxKey, blk.index));
      const handle = (k: number) => ({ cacheId: cacheIds[k], model: 'bench-256', contextHash: hash, blockIndex: k, blockSize: b, anchorSize: b, tokenStart: plan.blocks[k].start, tokenEnd: plan.blocks[k].end, layers: SHAPE.numLayers, bytes: (plan.blocks[k].end - plan.blocks[k].start) * kvBytesPerToken(SHAPE), hostId: `host-${plan.hostOfBlock[k]}` });
      put('kvPut', await timeMs(reps, async () => {
        for (let k = 0; k < K; k++) await directory.putEncoded(handle(k));
      }));
      put('kvGetMany', await timeMs(reps, () => directory.getMany(cacheIds)));
      put('kvTouch', await timeMs(reps, () => directory.touch(cacheIds)));
      const recordBytes = (await redis.call('MEMORY', 'USAGE', keys.kvHandle(cacheIds[K - 1]))) as number;
      put('kvBytes', (recordBytes * K) / 1024);
      put('kvRemove', await timeMs(1, () => directory.remove(cacheIds, 'host-0')));
      await directory.remove(cacheIds);

      // Messages whose size grows with K: the request job (its encoded block list), one host's
      // attendMany call for its blocks (16 query rows) and its reply (one partial per item).
      const mine = plan.assignments[hosts - 1].blocks.map((k) => cacheIds[k]);
      const q = new Float32Array(H * 16 * D); // (H, 16, D)
      const qpos = Int32Array.from({ length: 16 }, (_, i) => N + i);
      const call = encode(message('call', { id: 'c1', from: 'reply:x', method: 'attendMany', args: { items: [{ cacheIds: mine, layer: 0, q, qpos }] }, deadline: Date.now() + 60000 }));
      const reply = encode(message('reply', { id: 'c1', ok: true, result: [partial(H, 16, D, 1)] }));
      const job = Buffer.from(JSON.stringify({ requestId: 'r', model: 'bench-256', mode: 'star', blockSize: b, anchorSize: b, hosts, contextHash: hash, contextLength: N, contextKey: ctxKey, queryIds: Array(16).fill(100), maxNewTokens: 32, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: [], ignoreEos: true, cache: false, encodedBlocks: plan.blocks.map((blk) => blk.index), submittedAt: Date.now() }));
      put('callBytes', call.length / 1024);
      put('replyBytes', reply.length / 1024);
      put('jobBytes', job.length / 1024);
      const roundTrip = async (buf: Buffer): Promise<number> => {
        const sub = redis.duplicate();
        const channel = `${keys.prefix}:bench:${randomBytes(4).toString('hex')}`;
        let got: (b: Buffer) => void = () => undefined;
        sub.on('messageBuffer', (_c: Buffer, m: Buffer) => got(m));
        await sub.subscribe(channel);
        try {
          return await timeMs(reps, async () => {
            const arrived = new Promise<Buffer>((r) => (got = r));
            await publishMessage(redis, keys, channel, buf, { inlineLimit: 0, ttlMs: 60000 }); // parked whatever its size
            await resolveMessage(redis, await arrived);
          });
        } finally {
          sub.disconnect();
        }
      };
      put('claimCall', await roundTrip(call));
      put('claimCtx', await roundTrip(Buffer.from(Int32Array.from(ids).buffer)));

      const parts1 = Array.from({ length: K }, (_, k) => partial(H, 1, D, k));
      const parts16 = Array.from({ length: K }, (_, k) => partial(H, 16, D, k));
      put('merge1', await timeMs(Math.max(reps, 20), () => mergePartials(parts1)));
      put('merge16', await timeMs(Math.max(reps, 20), () => mergePartials(parts16)));

      const blocksOfHost = plan.assignments[hosts - 1].blocks;
      const hostRows = blocksOfHost.reduce((s, k) => s + plan.blocks[k].end - plan.blocks[k].start, 0) + plan.anchorLength;
      put('hostKv', (hostRows * kvBytesPerToken(SHAPE)) / 2 ** 20);
      put('totalKv', ((N + hosts * plan.anchorLength) * kvBytesPerToken(SHAPE)) / 2 ** 20);
      await redis.del(keys.contextIds(hash));
    }
  } finally {
    await deleteKeysByPrefix(redis, keys.prefix);
    await closeRedis(redis);
  }
  const loadAfter = os.loadavg()[0];
  const labels: [string, string, string][] = [
    ['blocks', 'blocks K', ''],
    ['ids', 'seeded random context (randomTokenIds)', 'ms'],
    ['hash', 'contextHash of the context (client)', 'ms'],
    ['plan', 'block planning (planMode)', 'ms'],
    ['inputs', "every block's phase-1 ids + positions", 'ms'],
    ['inputBytes', '  their size', 'MiB'],
    ['flops', 'FLOP count (phase1Flops)', 'ms'],
    ['store', 'store the context in Redis (SET)', 'ms'],
    ['readWhole', 'K block jobs read the whole context (GET)', 'ms'],
    ['readWholeMb', '  bytes read', 'MiB'],
    ['readSeg', 'K block jobs read their segments (GETRANGE)', 'ms'],
    ['readSegMb', '  bytes read', 'MiB'],
    ['kvPut', 'KV directory: K records written (putEncoded)', 'ms'],
    ['kvGetMany', 'KV directory: K records read (getMany)', 'ms'],
    ['kvTouch', 'KV directory: K records touched', 'ms'],
    ['kvRemove', 'KV directory: K records removed (one host)', 'ms'],
    ['kvBytes', 'KV directory: K records in Redis (MEMORY USAGE)', 'KiB'],
    ['jobBytes', 'request job data (JSON)', 'KiB'],
    ['callBytes', "a host's attendMany call, its K/H blocks, 16 rows", 'KiB'],
    ['replyBytes', '  its reply', 'KiB'],
    ['claimCall', '  claim-check round trip of that call', 'ms'],
    ['claimCtx', 'claim-check round trip of the context ids (4·N bytes)', 'ms'],
    ['merge1', 'phase-2 merge of K block partials, 1 row (decode)', 'ms'],
    ['merge16', 'phase-2 merge of K block partials, 16 rows (query)', 'ms'],
    ['hostKv', 'KV per host (its blocks + its anchor)', 'MiB'],
    ['totalKv', 'KV of the context, all hosts', 'MiB'],
  ];
  for (const [k, piece, unit] of labels) add(piece, unit, per[k]);
  const columns: Column[] = [
    { key: 'piece', title: 'piece', align: 'left' },
    { key: 'unit', title: 'unit', align: 'left' },
    ...contexts.map((N, i) => ({ key: `n${i}`, title: `N = ${N.toLocaleString('en-US')}`, digits: 2 })),
  ];
  process.stdout.write(
    `Star, b = a = ${b}, ${hosts} hosts, bench shape (KV ${kvBytesPerToken(SHAPE)} B/token); median of ${reps}; claim-check inline limit ${DEFAULT_INLINE_LIMIT_BYTES / 1024} KiB; ` +
      `1-min load average ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after (${os.cpus().length} CPUs)\n\n${markdownTable(columns, rows)}\n`,
  );
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify({ command: `npx tsx bench/scale.ts ${process.argv.slice(2).join(' ')}`, contexts, blockSize: b, hosts, reps, loadAverage: { before: loadBefore, after: loadAfter }, pieces: Object.fromEntries(labels.map(([k, piece, unit]) => [k, { piece, unit, values: per[k] }])) }, null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack}\n`);
  process.exit(1);
});
