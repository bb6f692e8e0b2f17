/**
 * Image commands, named as in Docker: `images`, `rmi`, `tag`, `inspect`, `save`, `load`, and the
 * same under `image` (`image ls|rm|tag|inspect|save|load`). Images live in `<data root>/content`.
 */
import { createReadStream } from 'node:fs';
import {
  type ArchiveFormat,
  type ContentStore,
  collectGarbage,
  type Descriptor,
  familiarName,
  findImage,
  isImageError,
  listImages,
  normalizeName,
  openImageStore,
  parseReference,
  REF_NAME_ANNOTATION,
  type ResolvedImage,
  resolveImage,
  type StoreImage,
} from '@tsc/image';
import { isContainerError } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { context, UsageError } from '../context.js';
import { inspectContainer } from '../image-containers.js';

interface DataRootFlag {
  dataRoot?: string;
}

function store(cmd: Command): Promise<ContentStore> {
  const own = (cmd.opts() as DataRootFlag).dataRoot;
  return openImageStore(own ?? context(cmd).dataRoot);
}

function dataRootOption(c: Command): Command {
  return c.option('--data-root <dir>', 'root directory of images (default: the global --data-root)');
}

/** An image error is the user's to fix: one line, no stack. */
function userError(e: unknown): never {
  if (isImageError(e)) throw new UsageError(e.message);
  throw e;
}

function shortHex(d: string): string {
  return d.slice(d.indexOf(':') + 1, d.indexOf(':') + 13);
}

/** go-units HumanSizeWithPrecision(size, 3): decimal units, as `docker images` prints. */
export function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${Number(v.toPrecision(3))}${units[i]}`;
}

/** go-units HumanDuration, as `docker images` prints CREATED (`2 weeks ago`). */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  const minutes = Math.floor(ms / 60_000);
  const hours = Math.floor(ms / 3_600_000 + 0.5);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(hours / 24 / 365)} years`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows
    .map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 3))).join(''))
    .join('\n');
}

/** Content size of an image: config and layers as stored. */
function imageSize(img: ResolvedImage): number {
  return img.configDescriptor.size + img.manifest.layers.reduce((a, l) => a + l.size, 0);
}

interface Row {
  repository: string;
  tag: string;
  digest: string;
  id: string;
  created: string;
  createdAt: number;
  size: number;
}

function splitName(full: string): { repository: string; tag: string } {
  const r = parseReference(full);
  return {
    repository: familiarName(parseReference(r.name)).replace(/:latest$/, ''),
    tag: r.tag ?? '<none>',
  };
}

function rowsOf(images: StoreImage[]): Row[] {
  const rows: Row[] = [];
  for (const e of images) {
    const id = e.image?.id ?? e.rootDescriptor.digest;
    const created = e.image?.config.created ?? '';
    const base = {
      digest: e.rootDescriptor.digest,
      id,
      created,
      createdAt: created ? Date.parse(created) || 0 : 0,
      size: e.image ? imageSize(e.image) : e.rootDescriptor.size,
    };
    if (e.names.length === 0) rows.push({ repository: '<none>', tag: '<none>', ...base });
    for (const n of e.names) {
      try {
        rows.push({ ...splitName(n), ...base });
      } catch {
        rows.push({ repository: n, tag: '<none>', ...base });
      }
    }
  }
  return rows.sort((a, b) => b.createdAt - a.createdAt || a.repository.localeCompare(b.repository));
}

function matchesFilter(row: Row, filter: string): boolean {
  const [repo, tag] = filter.includes(':')
    ? [filter.slice(0, filter.lastIndexOf(':')), filter.slice(filter.lastIndexOf(':') + 1)]
    : [filter, undefined];
  const norm = (r: string) => {
    try {
      return parseReference(r).name;
    } catch {
      return r;
    }
  };
  if (row.repository === '<none>') return false;
  return norm(row.repository) === norm(repo) && (tag === undefined || row.tag === tag);
}

interface ImagesFlags extends DataRootFlag {
  quiet?: boolean;
  digests?: boolean;
  noTrunc?: boolean;
  format?: string;
}

async function imagesAction(filter: string | undefined, f: ImagesFlags, cmd: Command): Promise<void> {
  const s = await store(cmd);
  let rows = rowsOf(await listImages(s));
  if (filter !== undefined) rows = rows.filter((r) => matchesFilter(r, filter));
  const id = (d: string) => (f.noTrunc ? d : shortHex(d));
  if (f.quiet) {
    const seen = new Set<string>();
    for (const r of rows) {
      if (seen.has(r.id)) continue;
      seen.add(r.id);
      process.stdout.write(`${id(r.id)}\n`);
    }
    return;
  }
  const format = f.format ?? 'table';
  if (format === 'json') {
    for (const r of rows)
      process.stdout.write(
        `${JSON.stringify({
          Repository: r.repository,
          Tag: r.tag,
          Digest: r.digest,
          ID: id(r.id),
          CreatedAt: r.created,
          CreatedSince: r.createdAt ? `${humanDuration(Date.now() - r.createdAt)} ago` : 'N/A',
          Size: humanSize(r.size),
        })}\n`,
      );
    return;
  }
  if (format !== 'table') throw new UsageError(`--format: expected table or json, got "${format}"`);
  const head = ['REPOSITORY', 'TAG', ...(f.digests ? ['DIGEST'] : []), 'IMAGE ID', 'CREATED', 'SIZE'];
  const out = [head];
  for (const r of rows)
    out.push([
      r.repository,
      r.tag,
      ...(f.digests ? [r.digest] : []),
      id(r.id),
      r.createdAt ? `${humanDuration(Date.now() - r.createdAt)} ago` : 'N/A',
      humanSize(r.size),
    ]);
  process.stdout.write(`${table(out)}\n`);
}

/** `rmi`: untag names; an ID removes every name of the image (several only with -f). */
async function rmiAction(
  names: string[],
  f: { force?: boolean } & DataRootFlag,
  cmd: Command,
): Promise<void> {
  const s = await store(cmd);
  let failed: string | undefined;
  for (const input of names) {
    try {
      const found = await findImage(s, input);
      // By name: that name only. By ID: every entry of that image (several manifests may share
      // one config), which Docker wants forced when it has several names.
      let digests: Set<string>;
      let untag: string[];
      const id = found.image?.id;
      if (found.ref !== undefined) {
        digests = new Set([found.descriptor.digest]);
        untag = [found.ref];
      } else if (id !== undefined) {
        const same = (await listImages(s)).filter((e) => e.image?.id === id);
        digests = new Set(same.map((e) => e.rootDescriptor.digest));
        untag = same.flatMap((e) => e.names);
        if (untag.length > 1 && !f.force)
          throw new UsageError(
            `conflict: unable to delete ${shortHex(id)} (must be forced) - image is referenced in multiple repositories`,
          );
      } else {
        // name@digest: the names of that repository pointing at the digest
        const repo = parseReference(input).name;
        digests = new Set([found.descriptor.digest]);
        untag = (await s.listRefs())
          .filter(
            (r) => r.descriptor.digest === found.descriptor.digest && parseReference(r.name).name === repo,
          )
          .map((r) => r.name);
      }
      for (const n of untag) {
        await s.removeRef(n);
        process.stdout.write(`Untagged: ${familiarName(parseReference(n))}\n`);
      }
      // The last name gone (or an untagged image by ID): the image goes, with its unnamed entries.
      const deleted: string[] = [];
      await s.updateIndex((index) => {
        deleted.length = 0;
        const named = new Set<string>(
          index.manifests
            .filter((m) => m.annotations?.[REF_NAME_ANNOTATION] !== undefined)
            .map((m) => m.digest),
        );
        for (const d of digests) if (!named.has(d)) deleted.push(d);
        return { ...index, manifests: index.manifests.filter((m) => !deleted.includes(m.digest)) };
      });
      if (deleted.length > 0) process.stdout.write(`Deleted: ${id ?? [...deleted].join(', ')}\n`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (!(e instanceof UsageError) && !isImageError(e)) throw e;
      // Docker reports each failure and goes on with the other names.
      process.stderr.write(`nsinit: ${msg}\n`);
      failed ??= msg;
    }
  }
  await collectGarbage(s);
  if (failed !== undefined) process.exit(1);
}

async function tagAction(source: string, target: string, _f: DataRootFlag, cmd: Command): Promise<void> {
  const s = await store(cmd);
  try {
    const r = parseReference(target);
    if (r.digest !== undefined) throw new UsageError(`tag ${target}: a tag cannot name a digest`);
    const found = await findImage(s, source);
    const { annotations: _, ...descriptor } = found.descriptor;
    await s.setRef(normalizeName(target), descriptor as Descriptor);
  } catch (e) {
    userError(e);
  }
}

/** Docker's `image inspect` JSON for an image. */
async function inspectImage(s: ContentStore, name: string): Promise<Record<string, unknown>> {
  const img = await resolveImage(s, name);
  const refs = (await s.listRefs()).filter((r) => r.descriptor.digest === img.rootDescriptor.digest);
  const repoTags = refs.map((r) => familiarName(parseReference(r.name)));
  const repoDigests = [
    ...new Set(
      refs.map(
        (r) => `${familiarName(parseReference(parseReference(r.name).name))}@${img.rootDescriptor.digest}`,
      ),
    ),
  ].map((d) => d.replace(/:latest@/, '@'));
  const c = img.config.config ?? {};
  const history = img.config.history ?? [];
  return {
    Id: img.id,
    RepoTags: repoTags,
    RepoDigests: repoDigests,
    Parent: '',
    Comment: history.at(-1)?.comment ?? '',
    Created: img.config.created ?? '',
    Author: img.config.author ?? '',
    Config: {
      User: c.User ?? '',
      ExposedPorts: c.ExposedPorts ?? null,
      Env: c.Env ?? null,
      Cmd: c.Cmd ?? null,
      Entrypoint: c.Entrypoint ?? null,
      WorkingDir: c.WorkingDir ?? '',
      Volumes: c.Volumes ?? null,
      Labels: c.Labels ?? null,
      StopSignal: c.StopSignal ?? '',
      OnBuild: c.OnBuild ?? null,
    },
    Architecture: img.config.architecture,
    ...(img.config.variant ? { Variant: img.config.variant } : {}),
    Os: img.config.os,
    Size: imageSize(img),
    RootFS: { Type: 'layers', Layers: img.config.rootfs.diff_ids },
    History: history.map((h) => ({
      Created: h.created ?? '',
      CreatedBy: h.created_by ?? '',
      ...(h.author ? { Author: h.author } : {}),
      Comment: h.comment ?? '',
      EmptyLayer: h.empty_layer === true,
    })),
    Descriptor: img.manifestDescriptor,
  };
}

async function inspectAction(
  names: string[],
  f: { type?: string } & DataRootFlag,
  cmd: Command,
  imagesOnly: boolean,
): Promise<void> {
  const type = imagesOnly ? 'image' : (f.type ?? 'auto');
  if (type !== 'auto' && type !== 'image' && type !== 'container')
    throw new UsageError(`--type: expected image or container, got "${type}"`);
  const out: unknown[] = [];
  let s: ContentStore | undefined;
  let failed: string | undefined;
  for (const name of names) {
    // Like `docker inspect`: a container of that id first, then an image.
    if (type !== 'image') {
      try {
        out.push(inspectContainer(context(cmd), name));
        continue;
      } catch (e) {
        if (
          type === 'container' ||
          !isContainerError(e) ||
          (e.code !== 'NotFound' && e.code !== 'InvalidArgument')
        ) {
          if (type === 'container') {
            failed ??= e instanceof Error ? e.message : String(e);
            process.stderr.write(`nsinit: ${failed}\n`);
            continue;
          }
          throw e;
        }
      }
    }
    try {
      s ??= await store(cmd);
      out.push(await inspectImage(s, name));
    } catch (e) {
      if (!isImageError(e)) throw e;
      failed ??= e.message;
      process.stderr.write(`nsinit: ${e.message}\n`);
    }
  }
  process.stdout.write(`${JSON.stringify(out, null, 4)}\n`);
  if (failed !== undefined) process.exit(1);
}

async function saveAction(
  names: string[],
  f: { output?: string; format?: string } & DataRootFlag,
  cmd: Command,
): Promise<void> {
  const format = (f.format ?? 'docker') as ArchiveFormat;
  if (format !== 'docker' && format !== 'oci')
    throw new UsageError(`--format: expected docker or oci, got "${f.format}"`);
  const s = await store(cmd);
  try {
    // tar is loaded only for save and load (start-up cost of every other command).
    if (f.output !== undefined && f.output !== '-') {
      const { saveImagesToFile } = await import('@tsc/image/archive');
      await saveImagesToFile(f.output, { store: s, names, format });
    } else {
      if (process.stdout.isTTY)
        throw new UsageError('cowardly refusing to write an archive to a terminal: use -o FILE or redirect');
      const { saveImages } = await import('@tsc/image/archive');
      await saveImages(process.stdout, { store: s, names, format });
    }
  } catch (e) {
    userError(e);
  }
}

async function loadAction(
  f: { input?: string; quiet?: boolean } & DataRootFlag,
  cmd: Command,
): Promise<void> {
  const s = await store(cmd);
  let input: NodeJS.ReadableStream;
  if (f.input !== undefined && f.input !== '-') {
    const rs = createReadStream(f.input);
    await new Promise<void>((resolve, reject) => {
      rs.once('open', () => resolve());
      rs.once('error', (e) =>
        reject(new UsageError(`load: ${f.input}: ${(e as NodeJS.ErrnoException).code ?? e.message}`)),
      );
    });
    input = rs;
  } else {
    if (process.stdin.isTTY)
      throw new UsageError('requested load from stdin, but stdin is a terminal: use -i FILE or redirect');
    input = process.stdin;
  }
  try {
    const { loadImages } = await import('@tsc/image/archive');
    const loaded = await loadImages(input as import('node:stream').Readable, { store: s });
    if (f.quiet) return;
    for (const l of loaded) {
      if (l.names.length === 0) process.stdout.write(`Loaded image ID: ${l.id ?? l.descriptor.digest}\n`);
      for (const n of l.names) process.stdout.write(`Loaded image: ${familiarName(parseReference(n))}\n`);
    }
  } catch (e) {
    userError(e);
  }
}

type Verb = 'ls' | 'rm' | 'tag' | 'inspect' | 'save' | 'load';

function define(parent: Command, verb: Verb, name: string, imagesOnly: boolean): Command {
  const c = dataRootOption(parent.command(name));
  switch (verb) {
    case 'ls':
      return c
        .description('list images (REPOSITORY TAG IMAGE ID CREATED SIZE)')
        .argument('[repository[:tag]]', 'show only this repository (and tag)')
        .option('-q, --quiet', 'only image IDs')
        .option('--digests', 'show digests')
        .option('--no-trunc', 'do not truncate IDs')
        .option('--format <format>', 'table or json (one object per line)', 'table')
        .action(imagesAction);
    case 'rm':
      return c
        .description('remove image names; an image goes (and its unused blobs) with its last name')
        .argument('<image...>', 'names or IDs')
        .option('-f, --force', 'remove an ID with several names')
        .action(rmiAction);
    case 'tag':
      return c
        .description('give an image another name')
        .argument('<source>', 'name or ID')
        .argument('<target>', 'new name[:tag]')
        .action(tagAction);
    case 'inspect':
      return (
        imagesOnly ? c.description('show images as JSON') : c.description('show containers or images as JSON')
      )
        .argument('<name...>', imagesOnly ? 'image names or IDs' : 'container ids, image names or IDs')
        .option('--type <type>', 'container or image (default: a container first, then an image)')
        .action((names: string[], f: { type?: string } & DataRootFlag, cmd: Command) =>
          inspectAction(names, f, cmd, imagesOnly),
        );
    case 'save':
      return c
        .description('write images to a tar archive (stdout unless -o)')
        .argument('<image...>', 'names or IDs')
        .option('-o, --output <file>', 'write to a file (atomically)')
        .option('--format <format>', 'docker (docker save) or oci (OCI image layout)', 'docker')
        .action(saveAction);
    case 'load':
      return c
        .description(
          'load images from a tar archive (docker save, OCI layout, plain or gzip; stdin unless -i)',
        )
        .option('-i, --input <file>', 'read from a file')
        .option('-q, --quiet', 'print nothing')
        .action(loadAction);
  }
}

export function register(program: Command): void {
  define(program, 'ls', 'images', true);
  define(program, 'rm', 'rmi', true);
  define(program, 'tag', 'tag', true);
  define(program, 'inspect', 'inspect', false);
  define(program, 'save', 'save', true);
  define(program, 'load', 'load', true);
  const group = program.command('image').description('manage images (ls, rm, tag, inspect, save, load)');
  define(group, 'ls', 'ls', true).alias('list');
  define(group, 'rm', 'rm', true);
  define(group, 'tag', 'tag', true);
  define(group, 'inspect', 'inspect', true);
  define(group, 'save', 'save', true);
  define(group, 'load', 'load', true);
}
