/**
 * The `docker run`-style flags `run --image` adds to `run`. A module of its own, so that `run` of
 * a bundle defines them without loading the image stack (@tsc/image, @tsc/unionfs, networks),
 * which `run --image` imports only when it runs.
 */
import type { Command } from 'commander';
import { collect } from '../context.js';

export function addImageRunFlags(cmd: Command): Command {
  return cmd
    .option(
      '--image <ref>',
      'run an image from the local store (see nsinit images, nsinit pull) instead of a bundle',
    )
    .option('--name <name>', 'with --image: the container id (default: 12 random hex digits)')
    .option('--rm', 'with --image: remove the container and its writable layer when it exits')
    .option('--network <mode>', 'with --image: bridge (default), none, host or container:<id>')
    .option(
      '-e, --env <K=V>',
      'with --image: set an environment variable (K alone: from this environment)',
      collect,
    )
    .option('-w, --workdir <dir>', 'with --image: the working directory')
    .option('-u, --user <user>', 'with --image: name, uid, uid:gid or name:group, from the image')
    .option('--entrypoint <cmd>', "with --image: override the image's entrypoint")
    .option(
      '-p, --publish <[ip:]host:container[/proto]>',
      'with --image: publish a port (bridge network)',
      collect,
    )
    .option(
      '--link <name[:alias]>',
      'with --image: add a hosts entry and link variables for another container',
      collect,
    )
    .option('--dns <ip>', 'with --image: a nameserver for resolv.conf', collect)
    .option('--add-host <host:ip>', 'with --image: an /etc/hosts entry', collect)
    .option('--bridge <name>', 'with --image: the bridge of the bridge network (default nsinit0)')
    .option(
      '--subnet <cidr>',
      'with --image: its IPv4 subnet, used when the bridge is first made (default 172.29.0.0/16)',
    )
    .option('--hostname <name>', 'with --image: the container host name (default: its id)')
    .option('--read-only', "with --image: mount the container's root filesystem read-only")
    .option('-t, --tty', 'with --image: give the process a terminal')
    .option(
      '--pull <policy>',
      'with --image: missing (default: pull an image the store lacks), never, always',
    )
    .option('--platform <os/arch[/variant]>', "with --image: the image's platform (default: this machine's)");
}
