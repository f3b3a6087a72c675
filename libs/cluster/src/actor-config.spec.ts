/** The actor configuration: the direct-link settings (STARQ_LINK, STARQ_LINK_ADVERTISE, STARQ_LINK_THREAD) and batched attention (STARQ_ATTEND_BATCHING). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseActorConfig } from './actor-config';

let modelDir: string;
const env = (extra: Record<string, string>) => ({ STARQ_MODEL_DIR: modelDir, ...extra });

beforeAll(() => {
  modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'starq-actor-config-'));
  fs.writeFileSync(path.join(modelDir, 'config.json'), '{}'); // the config only checks that it exists
});
afterAll(() => fs.rmSync(modelDir, { recursive: true, force: true }));

describe('actor config: direct link', () => {
  it('listens on any free loopback port by default and advertises the bound address', () => {
    const c = parseActorConfig('host', env({}));
    expect(c.link).toBe('tcp://127.0.0.1:0');
    expect(c.linkAdvertise).toBeNull();
  });

  it('turns the link off with STARQ_LINK=off', () => {
    expect(parseActorConfig('host', env({ STARQ_LINK: 'off' })).link).toBeNull();
  });

  it('takes a Unix socket and an advertised address', () => {
    const c = parseActorConfig('host', env({ STARQ_LINK: 'tcp://0.0.0.0:7400', STARQ_LINK_ADVERTISE: 'tcp://10.0.0.5:7400' }));
    expect(c).toMatchObject({ link: 'tcp://0.0.0.0:7400', linkAdvertise: 'tcp://10.0.0.5:7400' });
    expect(parseActorConfig('host', env({ STARQ_LINK: 'unix:/run/starq/host.sock' })).link).toBe('unix:/run/starq/host.sock');
  });

  it('reports a bad address, and a wildcard listen address without an advertised one', () => {
    expect(() => parseActorConfig('host', env({ STARQ_LINK: 'localhost:7400' }))).toThrow(/STARQ_LINK: invalid link address "localhost:7400"/);
    expect(() => parseActorConfig('host', env({ STARQ_LINK: 'tcp://0.0.0.0:7400' }))).toThrow(/set STARQ_LINK_ADVERTISE/);
    expect(() => parseActorConfig('host', env({ STARQ_LINK_ADVERTISE: 'nope' }))).toThrow(expect.objectContaining({ code: 'invalid_config', param: 'env' }));
  });

  it('serves the link from the engine thread unless STARQ_LINK_THREAD=main; anything else is reported', () => {
    expect(parseActorConfig('host', env({})).linkThread).toBe('engine');
    expect(parseActorConfig('host', env({ STARQ_LINK_THREAD: 'main' })).linkThread).toBe('main');
    expect(() => parseActorConfig('host', env({ STARQ_LINK_THREAD: 'worker' }))).toThrow(/STARQ_LINK_THREAD must be engine or main \(got "worker"\)/);
  });
});

describe('actor config: batched attention', () => {
  it('is on by default, off with STARQ_ATTEND_BATCHING=0, and anything but 1/0 is refused', () => {
    expect(parseActorConfig('host', env({})).attendBatching).toBe(true);
    expect(parseActorConfig('query', env({ STARQ_ATTEND_BATCHING: '1' })).attendBatching).toBe(true);
    expect(parseActorConfig('query', env({ STARQ_ATTEND_BATCHING: '0' })).attendBatching).toBe(false);
    expect(() => parseActorConfig('host', env({ STARQ_ATTEND_BATCHING: 'yes' }))).toThrow(/STARQ_ATTEND_BATCHING must be 1 or 0/);
  });
});

describe('actor config: engine rows per call', () => {
  it('STARQ_MAX_ROWS_PER_CALL sets the engine\'s maxRowsPerCall; unset leaves the engine default; a bad value is reported', () => {
    expect(parseActorConfig('host', env({})).maxRowsPerCall).toBeNull();
    expect(parseActorConfig('query', env({ STARQ_MAX_ROWS_PER_CALL: '512' })).maxRowsPerCall).toBe(512);
    expect(() => parseActorConfig('host', env({ STARQ_MAX_ROWS_PER_CALL: '0' }))).toThrow(/STARQ_MAX_ROWS_PER_CALL must be an integer ≥ 1 \(got "0"\)/);
  });
});
