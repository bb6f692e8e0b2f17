// Inspection on the real kernel: this process against a child in `unshare -n -u sleep`, a
// namespace bind-mounted onto a file, and paths of the wrong kind. Needs root (unshare, mount).
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { call } from '@tsc/syscall';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkNamespacePath,
  isNamespaceError,
  NAMESPACES,
  type NamespaceError,
  NS_GET_NSTYPE,
  namespaceOfPath,
  namespacesOf,
  sameNamespace,
} from '../src/index.js';

const skip =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (unshare, mount --bind)'
      : undefined;

function nsError(f: () => unknown): NamespaceError {
  try {
    f();
  } catch (e) {
    if (isNamespaceError(e)) return e;
    throw new Error(`expected a NamespaceError, got ${String(e)}`, { cause: e });
  }
  throw new Error('expected a NamespaceError, but the call returned');
}

function link(pid: number | 'self', file: string): string {
  return fs.readlinkSync(`/proc/${pid}/ns/${file}`);
}

async function until(what: string, f: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.skipIf(skip !== undefined)(`namespaces on the real kernel${skip ? ` (${skip})` : ''}`, () => {
  let child: ChildProcess;
  let pid: number;
  let tmp: string;
  const mounted: string[] = [];

  beforeAll(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsc-ns-test-'));
    child = spawn('unshare', ['-n', '-u', 'sleep', '60'], { stdio: 'ignore' });
    pid = child.pid as number;
    // unshare(1) execs sleep once it has unshared: wait for that.
    await until('unshare to exec sleep', () => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sleep';
      } catch {
        return false;
      }
    });
  });

  afterAll(() => {
    for (const m of mounted.reverse()) {
      try {
        execFileSync('umount', [m], { stdio: 'pipe' });
      } catch {
        // unmounted by the test
      }
    }
    child?.kill('SIGKILL');
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('reads all eight namespaces of a process: link, inode and nsfs device', () => {
    const self = namespacesOf('self');
    expect(Object.keys(self).sort()).toEqual(NAMESPACES.map((k) => k.type).sort());
    for (const k of NAMESPACES) {
      const id = self[k.type];
      expect(id.link).toBe(link('self', k.file));
      expect(id.link).toBe(`${k.file}:[${id.inode}]`);
      const st = fs.statSync(`/proc/self/ns/${k.file}`);
      expect(id.inode).toBe(st.ino);
      expect(id.dev).toBe(st.dev);
    }
    // A subset, for another pid.
    const some = namespacesOf(pid, ['network', 'uts']);
    expect(Object.keys(some).sort()).toEqual(['network', 'uts']);
  });

  it('tells the namespaces a child unshared from those it shares with us', () => {
    const self = namespacesOf('self');
    const other = namespacesOf(pid);
    // Read independently of the package: the links are what readlink(1) shows.
    expect(other.network.link).toBe(link(pid, 'net'));
    expect(other.uts.link).toBe(link(pid, 'uts'));
    expect(other.network.inode).not.toBe(self.network.inode);
    expect(other.uts.inode).not.toBe(self.uts.inode);
    for (const t of ['mount', 'ipc', 'pid', 'user', 'cgroup', 'time'] as const) {
      expect(other[t], t).toEqual(self[t]);
    }
    expect(sameNamespace('self', pid, 'network')).toBe(false);
    expect(sameNamespace(pid, 'self', 'uts')).toBe(false);
    expect(sameNamespace('self', pid, 'ipc')).toBe(true);
    expect(sameNamespace('self', pid, 'mount')).toBe(true);
    expect(sameNamespace(pid, pid, 'network')).toBe(true);
  });

  it('gets the kind of each /proc/self/ns file from NS_GET_NSTYPE', () => {
    for (const k of NAMESPACES) {
      const fd = fs.openSync(`/proc/self/ns/${k.file}`, 'r');
      try {
        // The ioctl itself, as the package calls it.
        expect(call('ioctl', [fd, NS_GET_NSTYPE, null]), k.type).toBe(k.flag);
      } finally {
        fs.closeSync(fd);
      }
      const info = namespaceOfPath(`/proc/self/ns/${k.file}`);
      expect(info.type).toBe(k.type);
      expect(info.inode).toBe(namespacesOf('self')[k.type].inode);
    }
  });

  it('identifies a namespace bind-mounted onto a file, also after its last process exits', async () => {
    const file = path.join(tmp, 'netns-x');
    fs.writeFileSync(file, '');
    const before = nsError(() => namespaceOfPath(file));
    expect(before.code).toBe('NotNamespace');
    expect(before.message).toBe(`${file} is not a namespace file (its filesystem is not nsfs)`);

    const netInode = namespacesOf(pid).network.inode;
    execFileSync('mount', ['--bind', `/proc/${pid}/ns/net`, file]);
    mounted.push(file);
    expect(fs.statfsSync(file).type).toBe(0x6e736673);
    expect(namespaceOfPath(file)).toMatchObject({ type: 'network', inode: netInode });
    expect(checkNamespacePath(file, 'network', 'linux.namespaces[1].path').inode).toBe(netInode);

    // The mount keeps the namespace alive without any process in it.
    const extra = spawn('unshare', ['-n', 'sleep', '60'], { stdio: 'ignore' });
    const extraPid = extra.pid as number;
    await until('the second unshare to exec', () => {
      try {
        return fs.readFileSync(`/proc/${extraPid}/comm`, 'utf8').trim() === 'sleep';
      } catch {
        return false;
      }
    });
    const file2 = path.join(tmp, 'netns-y');
    fs.writeFileSync(file2, '');
    execFileSync('mount', ['--bind', `/proc/${extraPid}/ns/net`, file2]);
    mounted.push(file2);
    const inode2 = namespacesOf(extraPid).network.inode;
    extra.kill('SIGKILL');
    await until('the second sleep to exit', () => !fs.existsSync(`/proc/${extraPid}/ns`));
    expect(namespaceOfPath(file2)).toMatchObject({ type: 'network', inode: inode2 });
    expect(inode2).not.toBe(netInode);

    execFileSync('umount', [file2]);
    execFileSync('umount', [file]);
    expect(nsError(() => namespaceOfPath(file)).code).toBe('NotNamespace');
  });

  it('rejects a namespace path of the wrong kind with an error naming the field', () => {
    const file = path.join(tmp, 'uts-x');
    fs.writeFileSync(file, '');
    execFileSync('mount', ['--bind', `/proc/${pid}/ns/uts`, file]);
    mounted.push(file);
    const e = nsError(() => checkNamespacePath(file, 'network', 'linux.namespaces[2].path'));
    expect(e.code).toBe('WrongType');
    expect(e.message).toBe(`linux.namespaces[2].path: ${file} is a uts namespace, not network`);
    expect(e).toMatchObject({
      field: 'linux.namespaces[2].path',
      path: file,
      expected: 'network',
      actual: 'uts',
    });
    expect(checkNamespacePath(file, 'uts').type).toBe('uts');

    const ipc = nsError(() => checkNamespacePath(`/proc/${pid}/ns/ipc`, 'pid'));
    expect(ipc.message).toBe(`/proc/${pid}/ns/ipc is an ipc namespace, not pid`);
    const notNs = nsError(() => checkNamespacePath('/etc/hostname', 'uts', 'linux.namespaces[0].path'));
    expect(notNs.code).toBe('NotNamespace');
    expect(notNs.message).toBe(
      'linux.namespaces[0].path: /etc/hostname is not a namespace file (its filesystem is not nsfs)',
    );
    const missing = nsError(() => checkNamespacePath(path.join(tmp, 'none'), 'uts', 'f'));
    expect(missing.code).toBe('NotFound');
    expect(missing.message).toBe(`f: ${path.join(tmp, 'none')} does not exist`);
    const badType = nsError(() => checkNamespacePath(file, 'net' as never));
    expect(badType.code).toBe('InvalidArgument');
  });

  it('reports a process that does not exist and a bad pid', async () => {
    const gone = spawn('true');
    const gonePid = gone.pid as number;
    // Reaped by Node at 'exit': the pid is free (a reuse within microseconds is not a concern here).
    await new Promise((resolve) => gone.on('exit', resolve));
    const e = nsError(() => namespacesOf(gonePid));
    expect(e.code).toBe('NotFound');
    expect(e.message).toBe(`process ${gonePid} does not exist`);
    expect(nsError(() => sameNamespace(gonePid, 'self', 'network')).code).toBe('NotFound');
    expect(nsError(() => namespacesOf(0)).code).toBe('InvalidArgument');
    expect(nsError(() => namespacesOf(-1)).code).toBe('InvalidArgument');
    expect(nsError(() => sameNamespace('self', 'self', 'net' as never)).code).toBe('InvalidArgument');
  });
});
