import { PeriodicTask } from './periodic-task';

describe('PeriodicTask', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('never runs the task twice at once, reports failures and keeps ticking, and stop waits for the run in progress', async () => {
    let calls = 0;
    let release: (() => void) | null = null;
    const errors: unknown[] = [];
    const task = new PeriodicTask(
      () => {
        calls++;
        if (calls === 1) return Promise.reject(new Error('boom'));
        return new Promise<void>((r) => (release = r));
      },
      100,
      (e) => errors.push(e),
    );
    task.start();
    task.start(); // a second start is a no-op
    await jest.advanceTimersByTimeAsync(100);
    expect(calls).toBe(1);
    expect(errors).toEqual([new Error('boom')]);
    await jest.advanceTimersByTimeAsync(100);
    expect(calls).toBe(2); // the failure did not stop the ticks
    await jest.advanceTimersByTimeAsync(500);
    expect(calls).toBe(2); // run 2 is still in progress: those ticks were skipped
    let stopped = false;
    const stopping = task.stop().then(() => (stopped = true));
    await jest.advanceTimersByTimeAsync(0);
    expect(stopped).toBe(false);
    release!();
    await stopping;
    expect(stopped).toBe(true);
    await jest.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(2); // no tick after stop
  });
});
