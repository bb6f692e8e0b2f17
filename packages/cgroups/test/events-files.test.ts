// oomEvents() against plain files: the v2 inotify wake-up (on tmpfs, inotify works the same), the
// polling fallback, the end of the cgroup and AbortSignal.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { oomEvents, oomSourceV1, oomSourceV2 } from '../src/events.js';
import { delay } from './helpers.js';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-cg-events-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const EVENTS = (kills: number): string =>
  `low 0\nhigh 0\nmax 0\noom ${kills}\noom_kill ${kills}\noom_group_kill 0\n`;

describe('oomEvents (files)', () => {
  it('v2: inotify on memory.events wakes the iterator long before the polling interval', async () => {
    const dir = path.join(tmp, 'cg');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'memory.events'), EVENTS(0));
    const it = oomEvents(oomSourceV2(dir), 0, { intervalMs: 60_000 });
    const first = it.next();
    await delay(20);
    const t0 = Date.now();
    fs.writeFileSync(path.join(dir, 'memory.events'), EVENTS(2));
    expect(await first).toEqual({ done: false, value: { type: 'oom', count: 2 } });
    expect(Date.now() - t0).toBeLessThan(1000);
    const second = it.next();
    await delay(20);
    fs.writeFileSync(path.join(dir, 'memory.events'), EVENTS(3));
    expect(await second).toEqual({ done: false, value: { type: 'oom', count: 3 } });
    // Removing the file (the cgroup) ends the iteration, also through inotify.
    const end = it.next();
    await delay(20);
    fs.rmSync(dir, { recursive: true });
    expect(await end).toEqual({ done: true, value: undefined });
  });

  it('v1: counts past the baseline from memory.oom_control (polled here: no eventfd on plain files)', async () => {
    const dir = path.join(tmp, 'mem');
    fs.mkdirSync(dir);
    const control = path.join(dir, 'memory.oom_control');
    fs.writeFileSync(control, 'oom_kill_disable 0\nunder_oom 0\noom_kill 5\n');
    fs.writeFileSync(path.join(dir, 'cgroup.event_control'), '');
    const seen: number[] = [];
    const ac = new AbortController();
    const done = (async () => {
      for await (const e of oomEvents(oomSourceV1(dir), 5, { intervalMs: 10, signal: ac.signal })) {
        seen.push(e.count);
        if (seen.length === 2) ac.abort();
      }
    })();
    await delay(30);
    fs.writeFileSync(control, 'oom_kill_disable 0\nunder_oom 0\noom_kill 6\n');
    await delay(50);
    fs.writeFileSync(control, 'oom_kill_disable 0\nunder_oom 0\noom_kill 8\n');
    await done;
    expect(seen).toEqual([6, 8]);
    // The eventfd registration line was written ("<eventfd> <fd of memory.oom_control>").
    expect(fs.readFileSync(path.join(dir, 'cgroup.event_control'), 'utf8')).toMatch(/^\d+ \d+$/);
  });

  it('an already aborted signal or a missing cgroup ends at once; break closes the watch', async () => {
    const dir = path.join(tmp, 'cg');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'memory.events'), EVENTS(1));
    const ac = new AbortController();
    ac.abort();
    expect(await oomEvents(oomSourceV2(dir), 0, { signal: ac.signal }).next()).toEqual({
      done: true,
      value: undefined,
    });
    expect(await oomEvents(oomSourceV2(path.join(tmp, 'gone')), 0).next()).toEqual({
      done: true,
      value: undefined,
    });
    for await (const e of oomEvents(oomSourceV2(dir), 0)) {
      expect(e).toEqual({ type: 'oom', count: 1 }); // counted against the baseline 0
      break;
    }
  });
});
