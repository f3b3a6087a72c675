/**
 * `starq demo`: the README's one-command tour. Runs one long-context request in every mode on the
 * embedded default model — ../shared/models/stories260K when present, otherwise a tiny random
 * checkpoint generated on the spot (its text is gibberish, but the machinery is the same).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { MODES, type Mode } from '@starq/attention';
import { createRedis, deleteKeysByPrefix } from '@starq/actors';
import { startProcessCluster, StarqClient } from '@starq/cluster';
import { loadConfig } from '@starq/model/config';
import type { Timings } from '@starq/model/generate';
import { defaultModelDir } from '@starq/model/default-model';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { writeRandomCheckpoint } from '@starq/model/synthetic/random-checkpoint';
import { DEFAULT_REDIS_URL } from '../cluster-flags';
import { interruptible } from '../interrupt';
import { intFlag } from '../options';

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside with her dog, Max. ' +
  'One day, they went to the park and saw a big red ball under a tree. Lily ran to the ball and picked it up. ' +
  '"Look, Max!" she said. Max barked and wagged his tail. They played with the ball all day until the sun went down. ' +
  'When they got home, Lily was tired but happy. She gave Max a big hug and said, "Thank you for playing with me." ' +
  'Max licked her face. Lily smiled and went to bed. The next morning, Lily woke up early. She looked out of the window and saw that it was raining.';
const QUERY = ' Lily wanted to';


export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('one long-context request in star, ring and global mode: in-process, then on a local cluster of actor processes')
    .option('--model <dir>', 'model directory (default: ../shared/models/stories260K, else a generated tiny model)')
    .option('--hosts <n>', 'host actor processes of the demo cluster', '2')
    .option('--redis <url>', `Redis URL (default: ${DEFAULT_REDIS_URL}, else a private redis-server on a free port)`)
    .option('--prefix <p>', 'Redis key prefix of the demo cluster (default: starq-demo-<pid>); every key under it is deleted at the end')
    .action(async (flags: { model?: string; hosts: string; redis?: string; prefix?: string }) => {
      let dir = flags.model ?? defaultModelDir();
      let tmp: string | null = null;
      if (!dir) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-demo-'));
        writeRandomCheckpoint(tmp, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 1024, dtype: 'F32', tied: true, sharded: false, seed: 1 });
        dir = tmp;
        process.stderr.write(`../shared/models/stories260K not found: using a generated random model in ${tmp}\n`);
      }
      try {
        await demo(dir, intFlag(flags.hosts, 'hosts', 1)!, flags.redis, flags.prefix ?? `starq-demo-${process.pid}`);
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
}

async function demo(dir: string, hosts: number, redisUrl: string | undefined, prefix: string): Promise<void> {
  const out = (s: string) => process.stdout.write(s);
  const config = loadConfig(dir);
  const tok = StarqTokenizer.load(dir);
  const contextIds = tok.encode(STORY);
  const queryIds = tok.encode(QUERY, { addSpecialTokens: false });
  const blockSize = Math.ceil(contextIds.length / 4);
  const gen = { maxNewTokens: 24, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: tok.eosTokenIds };
  const modeOpts = (mode: Mode) => (mode === 'global' ? {} : { blockSize, hosts: 4 });
  out(`model ${dir}\ncontext ${contextIds.length} tokens, query ${JSON.stringify(QUERY)} (${queryIds.length} tokens), block size ${blockSize} (4 blocks)\n`);

  out(`\n1) in-process: 4 simulated hosts (worker threads) + a query actor\n`);
  const local = new Map<Mode, number[]>();
  const cluster = await LocalCluster.start(dir, config, { hosts: 4 });
  try {
    for (const mode of MODES) {
      const r = await cluster.generate({ mode, contextIds, queryIds, ...modeOpts(mode) }, gen);
      local.set(mode, r.generatedIds);
      out(line(mode, tok.decode(r.generatedIds), r.timings));
    }
  } finally {
    await cluster.close();
  }

  out(`\n2) a cluster of processes: ${hosts} host actors + 1 query actor on Redis (BullMQ block jobs; partials over direct links, Redis pub/sub as the fallback)\n`);
  const pc = await startProcessCluster({ hosts, threads: 1, prefix, redisUrl, modelDir: dir, log: () => undefined });
  const client = await StarqClient.connect(pc.redisUrl, { prefix: pc.prefix });
  try {
    out(`   redis ${pc.redisUrl}, actors: ${[...pc.hostIds, ...pc.queryIds].join(', ')}\n`);
    for (const mode of MODES) {
      const sub = await client.submit({ model: path.basename(path.resolve(dir)), mode, contextIds, queryIds, ...modeOpts(mode), ...gen });
      const r = await interruptible(client.wait(sub.requestId));
      const same = JSON.stringify(r.generatedIds) === JSON.stringify(local.get(mode));
      out(line(mode, tok.decode(r.generatedIds), r.timings) + `         ${same ? 'same tokens as in-process' : 'DIFFERENT tokens from in-process'}; blocks encoded ${r.blocksEncoded}, reused ${r.blocksReused}\n`);
    }
    const again = await client.submit({ model: path.basename(path.resolve(dir)), mode: 'star', contextIds, queryIds: tok.encode(' The next day', { addSpecialTokens: false }), blockSize, hosts: 4, ...gen });
    const r = await interruptible(client.wait(again.requestId));
    out(`\n   a second question on the same document reuses its KV blocks (encoded ${r.blocksEncoded}, reused ${r.blocksReused}):\n`);
    out(line('star', tok.decode(r.generatedIds), r.timings));
  } finally {
    await client.close();
    await cleanupPrefix(pc.redisUrl, pc.prefix);
    await pc.stop();
  }
}

function line(mode: string, text: string, t: Timings): string {
  return `   [${mode.padEnd(6)}] ${JSON.stringify(text)}\n         phase 1 ${t.phase1Ms.toFixed(0)} ms, first token ${t.firstTokenMs.toFixed(0)} ms, decode ${t.decodeTokensPerSec.toFixed(0)} tok/s\n`;
}

async function cleanupPrefix(url: string, prefix: string): Promise<void> {
  const redis = await createRedis(url);
  try {
    await deleteKeysByPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}
