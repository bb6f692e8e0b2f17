// OCI hooks on the real kernel: state on stdin, order, the namespaces container hooks run in,
// failures and timeouts (fatal, leaving nothing behind) and poststart failures (only a warning).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Container } from '../src/index.js';
import { alive, cgroupDirs, containerError, Fixture, notRoot, rootfs, script, waitFor } from './fixtures.js';

const HOOK_ENV = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin'];

describe.skipIf(notRoot)('Container hooks', () => {
  let fx: Fixture;

  beforeAll(() => {
    fx = new Fixture('hooks');
    rootfs();
  });
  afterEach(async () => {
    await fx.cleanup();
  });
  afterAll(async () => {
    await fx?.dispose();
  });

  /** A host hook that saves its stdin as `<dir>/<name>.json` and appends `name` to `<dir>/order`. */
  function recorder(dir: string, name: string) {
    const file = script(
      path.join(dir, `${name}.sh`),
      `cat > "${dir}/${name}.json"\necho ${name} >> "${dir}/order"`,
    );
    return { path: file, args: [`${name}.sh`], env: HOOK_ENV };
  }

  function readJson(file: string): Record<string, unknown> {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  }

  it('every hook point runs in order with the state on stdin; container hooks see its namespaces', async () => {
    const dir = fx.tempDir('hooks');
    fs.chmodSync(dir, 0o777);
    const b = fx.makeBundle({
      args: ['sh', '-c', 'echo ran > /tmp/process-ran'],
      mutate: (s) => {
        s.hostname = 'hooked';
        // The container sees the hook dir as /tmp.
        s.mounts.push({ destination: '/tmp', type: 'bind', source: dir, options: ['rbind', 'rw'] });
        s.hooks = {
          prestart: [recorder(dir, 'prestart')],
          createRuntime: [recorder(dir, 'createRuntime')],
          // Runs in the container's namespaces before pivot_root: host paths still resolve.
          createContainer: [
            {
              path: '/bin/sh',
              args: [
                'sh',
                '-c',
                `cat > ${dir}/createContainer.json
                 for n in uts mnt net ipc; do echo $n=$(readlink /proc/self/ns/$n); done > ${dir}/createContainer.ns
                 echo createContainer >> ${dir}/order`,
              ],
              env: HOOK_ENV,
            },
          ],
          // Runs in the container after pivot_root: /bin/sh is the rootfs's busybox, /tmp is `dir`.
          startContainer: [
            {
              path: '/bin/sh',
              args: [
                'sh',
                '-c',
                `cat > /tmp/startContainer.json
                 hostname > /tmp/startContainer.hostname
                 for n in uts mnt net ipc; do echo $n=$(readlink /proc/self/ns/$n); done > /tmp/startContainer.ns
                 echo startContainer >> /tmp/order`,
              ],
              env: HOOK_ENV,
            },
          ],
          poststart: [recorder(dir, 'poststart')],
          poststop: [recorder(dir, 'poststop')],
        };
      },
    });
    const id = fx.id();
    const out = fx.output();
    const warnings: string[] = [];
    const c = await Container.create({
      id,
      bundle: b.dir,
      root: fx.root,
      stdio: out.stdio,
      onWarning: (w) => warnings.push(w),
    });
    const pid = c.state().pid;
    const order = () => fs.readFileSync(path.join(dir, 'order'), 'utf8').trim().split('\n');
    expect(order()).toEqual(['prestart', 'createRuntime', 'createContainer']);

    for (const name of ['prestart', 'createRuntime', 'createContainer']) {
      expect(readJson(path.join(dir, `${name}.json`))).toMatchObject({
        ociVersion: '1.2.0',
        id,
        pid,
        bundle: b.dir,
        status: 'creating',
      });
    }
    const nsOf = (p: number) =>
      ['uts', 'mnt', 'net', 'ipc'].map((n) => `${n}=${fs.readlinkSync(`/proc/${p}/ns/${n}`)}`);
    const containerNs = nsOf(pid);
    expect(containerNs).not.toEqual(nsOf(process.pid));
    expect(fs.readFileSync(path.join(dir, 'createContainer.ns'), 'utf8').trim().split('\n')).toEqual(
      containerNs,
    );

    await c.start({ onWarning: (w) => warnings.push(w) });
    await waitFor(() => fs.existsSync(path.join(dir, 'process-ran')), 5000, 'the process');
    expect(order()).toEqual(['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart']);
    expect(readJson(path.join(dir, 'startContainer.json'))).toMatchObject({ id, pid, status: 'created' });
    expect(fs.readFileSync(path.join(dir, 'startContainer.hostname'), 'utf8')).toBe('hooked\n');
    expect(fs.readFileSync(path.join(dir, 'startContainer.ns'), 'utf8').trim().split('\n')).toEqual(
      containerNs,
    );
    expect(readJson(path.join(dir, 'poststart.json'))).toMatchObject({
      id,
      pid,
      bundle: b.dir,
      status: 'running',
    });

    await waitFor(() => c.state().status === 'stopped', 5000, 'the container to stop');
    expect(fs.existsSync(path.join(dir, 'poststop.json'))).toBe(false);
    await c.delete();
    expect(order()).toEqual([
      'prestart',
      'createRuntime',
      'createContainer',
      'startContainer',
      'poststart',
      'poststop',
    ]);
    expect(readJson(path.join(dir, 'poststop.json'))).toMatchObject({ id, bundle: b.dir, status: 'stopped' });
    expect(warnings).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('a failing createRuntime hook fails the create with HookFailed and leaves nothing behind', async () => {
    const dir = fx.tempDir('hooks');
    const b = fx.makeBundle({
      args: ['sleep', '1000'],
      mutate: (s) => {
        s.hooks = {
          prestart: [recorder(dir, 'prestart')],
          createRuntime: [
            { path: script(path.join(dir, 'fail.sh'), 'echo hook-says-no >&2; exit 3'), env: HOOK_ENV },
          ],
          poststop: [recorder(dir, 'poststop')],
        };
      },
    });
    const id = fx.id();
    const e = await containerError(
      Container.create({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
    );
    expect(e.code).toBe('HookFailed');
    expect(e.message).toContain('createRuntime hook');
    expect(e.message).toContain('exit status 3');
    expect(e.message).toContain('hook-says-no');
    expect(e.message).not.toContain('\n');
    const pid = (readJson(path.join(dir, 'prestart.json')) as { pid: number }).pid;
    expect(pid).toBeGreaterThan(0);
    expect(alive(pid)).toBe(false);
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
    // The container was never created: no poststop.
    expect(fs.existsSync(path.join(dir, 'poststop.json'))).toBe(false);
  });

  it('a hook that outlives its timeout fails with "timed out"', async () => {
    const dir = fx.tempDir('hooks');
    const b = fx.makeBundle({
      args: ['true'],
      mutate: (s) => {
        s.hooks = {
          prestart: [{ path: script(path.join(dir, 'slow.sh'), 'exec sleep 10'), timeout: 1, env: HOOK_ENV }],
        };
      },
    });
    const id = fx.id();
    const t0 = Date.now();
    const e = await containerError(
      Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(e.code).toBe('HookFailed');
    expect(e.message).toMatch(/prestart hook .*slow\.sh timed out after 1s/);
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('a container hook that outlives its timeout fails with "timed out" too', async () => {
    const b = fx.makeBundle({
      args: ['true'],
      mutate: (s) => {
        s.hooks = {
          createContainer: [{ path: '/bin/sleep', args: ['sleep', '10'], timeout: 1 }],
        };
      },
    });
    const id = fx.id();
    const t0 = Date.now();
    const e = await containerError(
      Container.run({ id, bundle: b.dir, root: fx.root, stdio: fx.output().stdio }),
    );
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(e.code).toBe('HookFailed');
    expect(e.message).toMatch(/createContainer hook \/bin\/sleep timed out after 1s/);
    expect(fx.stateIds()).toEqual([]);
    expect(cgroupDirs(id)).toEqual([]);
  });

  it('a failing poststart hook only warns; the container runs', async () => {
    const dir = fx.tempDir('hooks');
    const b = fx.makeBundle({
      args: ['sh', '-c', 'echo still-ran'],
      mutate: (s) => {
        s.hooks = { poststart: [{ path: script(path.join(dir, 'bad.sh'), 'exit 5'), env: HOOK_ENV }] };
      },
    });
    const id = fx.id();
    const out = fx.output();
    const warnings: string[] = [];
    const { container, exited } = await Container.run({
      id,
      bundle: b.dir,
      root: fx.root,
      stdio: out.stdio,
      onWarning: (w) => warnings.push(w),
    });
    expect((await exited).status).toBe(0);
    expect(out.read()).toBe('still-ran\n');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/poststart hook .*bad\.sh failed: exit status 5/);
    await container.delete();
    expect(cgroupDirs(id)).toEqual([]);
  });
});
