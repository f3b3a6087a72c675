/**
 * `starq demo`: the README's one-command tour. Runs one long-context request in every mode on the
 * embedded default model — ../shared/models/stories260K when present, otherwise a tiny random
 * checkpoint generated on the spot (its text is gibberish, but the machinery is the same).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { MODES } from '@starq/attention';
import { loadConfig } from '@starq/model/config';
import { StarqTokenizer } from '@starq/model/tokenizer';
import { LocalCluster } from '@starq/model/local/local-cluster';
import { writeRandomCheckpoint } from '@starq/model/testing/random-checkpoint';

const STORY =
  'Once upon a time, there was a little girl named Lily. She loved to play outside with her dog, Max. ' +
  'One day, they went to the park and saw a big red ball under a tree. Lily ran to the ball and picked it up. ' +
  '"Look, Max!" she said. Max barked and wagged his tail. They played with the ball all day until the sun went down. ' +
  'When they got home, Lily was tired but happy. She gave Max a big hug and said, "Thank you for playing with me." ' +
  'Max licked her face. Lily smiled and went to bed. The next morning, Lily woke up early. She looked out of the window and saw that it was raining.';
const QUERY = ' Lily wanted to';

export function defaultModelDir(): string | null {
  const dir = path.resolve(__dirname, '../../../../../shared/models/stories260K');
  return fs.existsSync(path.join(dir, 'config.json')) ? dir : null;
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run one long-context request in star, ring and global mode on the embedded default model')
    .option('--model <dir>', 'model directory (default: ../shared/models/stories260K, else a generated tiny model)')
    .action(async (flags: { model?: string }) => {
      let dir = flags.model ?? defaultModelDir();
      let tmp: string | null = null;
      if (!dir) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-demo-'));
        writeRandomCheckpoint(tmp, { architecture: 'llama', hidden: 64, intermediate: 128, layers: 2, heads: 4, kvHeads: 2, vocab: 128, maxPositions: 1024, dtype: 'F32', tied: true, sharded: false, seed: 1 });
        dir = tmp;
        process.stderr.write(`../shared/models/stories260K not found: using a generated random model in ${tmp}\n`);
      }
      try {
        const config = loadConfig(dir);
        const tok = StarqTokenizer.load(dir);
        const contextIds = tok.encode(STORY);
        const queryIds = tok.encode(QUERY, { addSpecialTokens: false });
        const blockSize = Math.ceil(contextIds.length / 4);
        process.stdout.write(`model ${dir}\ncontext ${contextIds.length} tokens, query ${JSON.stringify(QUERY)} (${queryIds.length} tokens), block size ${blockSize}, 4 in-process hosts\n\n`);
        const cluster = await LocalCluster.start(dir, config, { hosts: 4 });
        try {
          for (const mode of MODES) {
            const opts = mode === 'global' ? {} : { blockSize, hosts: 4 };
            const r = await cluster.generate({ mode, contextIds, queryIds, ...opts }, { maxNewTokens: 24, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, stopIds: tok.eosTokenIds });
            const t = r.timings;
            process.stdout.write(
              `[${mode.padEnd(6)}] ${JSON.stringify(tok.decode(r.generatedIds))}\n` +
                `         phase 1 ${t.phase1Ms.toFixed(1)} ms, first token ${t.firstTokenMs.toFixed(1)} ms, decode ${t.decodeTokensPerSec.toFixed(0)} tok/s\n`,
            );
          }
        } finally {
          await cluster.close();
        }
      } finally {
        if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
}
