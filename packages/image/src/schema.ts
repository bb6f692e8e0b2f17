/**
 * zod schemas of the OCI image spec documents (and Docker schema 2, which shares their
 * shape), and parsers that report the first problem with its JSON path:
 * `manifest.layers[2].digest: "sha256:12" is not 64 lowercase hex digits`.
 *
 * Unknown fields are kept (documents are content-addressed: what we do not understand we
 * must not drop when we store or push them again).
 */
import * as z from 'zod';
import { type Digest, parseDigest } from './digest.js';
import { ImageError } from './errors.js';
import { isIndexMediaType, isManifestMediaType, isSchema1MediaType, MediaType } from './media.js';

const digest = z.string().refine(
  (v) => {
    try {
      parseDigest(v);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'not a sha256/sha512 digest (algorithm:hex)' },
);

/** The platform a manifest of an index is for. */
export const PlatformSchema = z.looseObject({
  architecture: z.string().min(1),
  os: z.string().min(1),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  features: z.array(z.string()).optional(),
});
export interface Platform {
  architecture: string;
  os: string;
  'os.version'?: string | undefined;
  'os.features'?: string[] | undefined;
  variant?: string | undefined;
  features?: string[] | undefined;
}

/** A content descriptor: what a blob is, its digest and size. */
export const DescriptorSchema = z.looseObject({
  mediaType: z.string().min(1),
  digest,
  size: z.number().int().nonnegative(),
  urls: z.array(z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  platform: PlatformSchema.optional(),
  artifactType: z.string().optional(),
});
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[] | undefined;
  annotations?: Record<string, string> | undefined;
  platform?: Platform | undefined;
  artifactType?: string | undefined;
}

/** An image manifest (OCI, or Docker schema 2 which has the same shape). */
export const ManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export interface Manifest {
  schemaVersion: 2;
  mediaType?: string | undefined;
  artifactType?: string | undefined;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor | undefined;
  annotations?: Record<string, string> | undefined;
}

/** An image index (OCI) or manifest list (Docker). */
export const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
export interface Index {
  schemaVersion: 2;
  mediaType?: string | undefined;
  artifactType?: string | undefined;
  manifests: Descriptor[];
  subject?: Descriptor | undefined;
  annotations?: Record<string, string> | undefined;
}

const stringMap = z.record(z.string(), z.string());
const emptyObjectSet = z.record(z.string(), z.looseObject({}));

/** The execution parameters of an image config (`config` in the JSON). */
export const ContainerConfigSchema = z.looseObject({
  User: z.string().optional(),
  ExposedPorts: emptyObjectSet.nullish(),
  Env: z.array(z.string()).nullish(),
  Entrypoint: z.array(z.string()).nullish(),
  Cmd: z.array(z.string()).nullish(),
  Volumes: emptyObjectSet.nullish(),
  WorkingDir: z.string().optional(),
  Labels: stringMap.nullish(),
  StopSignal: z.string().optional(),
  ArgsEscaped: z.boolean().optional(),
  Healthcheck: z.looseObject({}).nullish(),
  OnBuild: z.array(z.string()).nullish(),
  Shell: z.array(z.string()).nullish(),
});
export interface ContainerConfig {
  User?: string | undefined;
  ExposedPorts?: Record<string, object> | null | undefined;
  Env?: string[] | null | undefined;
  Entrypoint?: string[] | null | undefined;
  Cmd?: string[] | null | undefined;
  Volumes?: Record<string, object> | null | undefined;
  WorkingDir?: string | undefined;
  Labels?: Record<string, string> | null | undefined;
  StopSignal?: string | undefined;
  ArgsEscaped?: boolean | undefined;
  Healthcheck?: object | null | undefined;
  OnBuild?: string[] | null | undefined;
  Shell?: string[] | null | undefined;
}

/** One history entry of an image config. */
export const HistorySchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  created_by: z.string().optional(),
  comment: z.string().optional(),
  empty_layer: z.boolean().optional(),
});
export interface History {
  created?: string | undefined;
  author?: string | undefined;
  created_by?: string | undefined;
  comment?: string | undefined;
  empty_layer?: boolean | undefined;
}

/** An image configuration (OCI `config.v1`, Docker `container.image.v1`). */
export const ImageConfigSchema = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().min(1),
  os: z.string().min(1),
  'os.version': z.string().optional(),
  'os.features': z.array(z.string()).optional(),
  variant: z.string().optional(),
  config: ContainerConfigSchema.optional(),
  rootfs: z.looseObject({
    type: z.literal('layers'),
    diff_ids: z.array(digest),
  }),
  history: z.array(HistorySchema).optional(),
});
export interface ImageConfig {
  created?: string | undefined;
  author?: string | undefined;
  architecture: string;
  os: string;
  'os.version'?: string | undefined;
  'os.features'?: string[] | undefined;
  variant?: string | undefined;
  config?: ContainerConfig | undefined;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: History[] | undefined;
}

function pathOf(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function parseWith<T>(schema: z.ZodType, value: unknown, what: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const iss = r.error.issues[0];
    const where = iss ? pathOf(iss.path) : '';
    throw new ImageError(
      'InvalidDocument',
      `${what}${where ? `.${where}` : ''}: ${iss?.message ?? 'invalid'}`,
    );
  }
  return r.data as T;
}

function decode(bytes: Uint8Array | string, what: string): unknown {
  try {
    return JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new ImageError('InvalidDocument', `${what}: not JSON (${(e as Error).message})`);
  }
}

/** A parsed manifest or index, told apart by `kind`. */
export type ParsedDocument = { kind: 'manifest'; manifest: Manifest } | { kind: 'index'; index: Index };

/**
 * Parses a manifest or index given as bytes, by the media type the registry or descriptor
 * gave (or, when that is missing, its own `mediaType` field or its shape).
 * @throws ImageError `Unsupported` for Docker schema 1, `InvalidDocument` naming the JSON path.
 */
export function parseManifestOrIndex(
  bytes: Uint8Array | string,
  mediaType?: string,
  what = 'manifest',
): ParsedDocument {
  const doc = decode(bytes, what);
  const own =
    typeof doc === 'object' && doc !== null ? (doc as { mediaType?: unknown }).mediaType : undefined;
  const schemaVersion =
    typeof doc === 'object' && doc !== null ? (doc as { schemaVersion?: unknown }).schemaVersion : undefined;
  const mt =
    mediaType && mediaType !== 'application/json' ? mediaType : typeof own === 'string' ? own : undefined;
  if (schemaVersion === 1 || (mt !== undefined && isSchema1MediaType(mt) && mt !== 'application/json'))
    throw new ImageError(
      'Unsupported',
      `${what}: Docker image manifest schema 1 is not supported (deprecated since 2017); push the image again with a current client`,
    );
  if (
    isIndexMediaType(mt) ||
    (mt === undefined && Array.isArray((doc as { manifests?: unknown })?.manifests))
  )
    return { kind: 'index', index: parseIndex(doc, what) };
  if (isManifestMediaType(mt) || mt === undefined || mt === MediaType.ociManifest)
    return { kind: 'manifest', manifest: parseManifest(doc, what) };
  throw new ImageError('Unsupported', `${what}: media type ${mt} is not an image manifest or index`);
}

/** Validates an already-decoded manifest. */
export function parseManifest(doc: unknown, what = 'manifest'): Manifest {
  return parseWith<Manifest>(ManifestSchema, doc, what);
}

/** Validates an already-decoded index. */
export function parseIndex(doc: unknown, what = 'index'): Index {
  return parseWith<Index>(IndexSchema, doc, what);
}

/** Parses an image config from bytes or a decoded object. */
export function parseImageConfig(input: Uint8Array | string | object, what = 'config'): ImageConfig {
  const doc = typeof input === 'string' || input instanceof Uint8Array ? decode(input, what) : input;
  return parseWith<ImageConfig>(ImageConfigSchema, doc, what);
}

/** Validates a descriptor. */
export function parseDescriptor(doc: unknown, what = 'descriptor'): Descriptor {
  return parseWith<Descriptor>(DescriptorSchema, doc, what);
}
