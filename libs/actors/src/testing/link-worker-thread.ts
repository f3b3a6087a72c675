/**
 * A worker thread for worker-link-server.spec.ts: serves `where` (its thread id), `gate` (answers
 * when the main thread posts `open` on `control`) and `hang` (never answers), `fail` (throws `bad_thing`) on a WorkerLinkServer;
 * everything else is relayed to the main thread. Posts `{ address }` on `control` once listening.
 */
import { threadId, workerData, type MessagePort } from 'node:worker_threads';
import { InvalidInputError } from '@starq/protocol';
import { WorkerLinkServer } from '../worker-link-server';

export async function run(): Promise<void> {
  const { actorId, relay, control } = workerData as { actorId: string; relay: MessagePort; control: MessagePort };
  const gates: (() => void)[] = [];
  control.on('message', (m: string) => m === 'open' && gates.splice(0).forEach((g) => g()));
  const server = new WorkerLinkServer({ actorId, address: 'tcp://127.0.0.1:0', relay });
  server.method('where', () => ({ threadId }));
  server.method('gate', () => new Promise<string>((resolve) => gates.push(() => resolve('opened'))));
  server.method('hang', () => new Promise(() => undefined));
  server.method('fail', () => {
    throw new InvalidInputError('bad_thing', 'this method always fails', 'x');
  });
  control.postMessage({ address: await server.start() });
}
