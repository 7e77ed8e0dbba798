/**
 * Walking the zod schema of mailbridge.yaml by key, so that everything path-shaped — environment
 * overrides, `secret set <path>`, the list of secret fields, "did you mean …?" — follows the schema
 * instead of a hand-kept list.
 *
 * Strategy: wrappers (optional, default, nullable, …) are peeled off to reach the schema that has
 * keys (object, record, discriminated union); their metadata is merged on the way, so a mark such
 * as `secret: true` counts wherever it sits. Keys match exactly first, then case-insensitively.
 * Items of a list are addressed by their index (notify.watch.groups.plant.listeners.0.password); a
 * union is walked through its object options (imap.auth: xoauth2 | { user, password }).
 */
import { z } from 'zod';

/** Any zod schema; `root` below is the schema of the whole file, which the composition root assembles (src/app/schema.ts). */
export type AnySchema = z.core.$ZodType;

/** The schema with wrappers removed, and the metadata of every layer merged (outer layers win). */
export function unwrap(schema: AnySchema): { inner: AnySchema; meta: Record<string, unknown> } {
  const layers: AnySchema[] = [];
  let s: AnySchema = schema;
  for (let guard = 0; guard < 32; guard++) {
    layers.push(s);
    const def = s._zod.def as { type: string; innerType?: AnySchema; in?: AnySchema; getter?: () => AnySchema };
    if (def.innerType && ['optional', 'nullable', 'default', 'prefault', 'readonly', 'catch', 'nonoptional'].includes(def.type)) {
      s = def.innerType;
    } else if (def.type === 'pipe' && def.in) {
      s = def.in;
    } else if (def.type === 'lazy' && def.getter) {
      s = def.getter();
    } else {
      break;
    }
  }
  const meta: Record<string, unknown> = {};
  for (const layer of layers.reverse()) Object.assign(meta, z.globalRegistry.get(layer) ?? {});
  return { inner: s, meta };
}

export function isSecretSchema(schema: AnySchema): boolean {
  return unwrap(schema).meta.secret === true;
}

/**
 * A one-way password hash (`hash: true`: relay.users.<name>.passwordHash, api.users.<name>.password).
 * Not a secret (nothing to seal, nothing to reveal), but not for display either: a shown hash can
 * be attacked offline.
 */
export function isHashSchema(schema: AnySchema): boolean {
  return unwrap(schema).meta.hash === true;
}

/** A value no answer shows: a secret or a password hash. */
export function isHiddenSchema(schema: AnySchema): boolean {
  return isSecretSchema(schema) || isHashSchema(schema);
}

export function kindOf(schema: AnySchema): string {
  return unwrap(schema).inner._zod.def.type;
}

/**
 * Object schemas a union offers (store: sqlite | postgres; imap.auth: xoauth2 | { user, password }),
 * with the discriminator if there is one.
 */
function objectOptions(inner: AnySchema): { options: Array<z.core.$ZodObject>; discriminator?: string } | undefined {
  const def = inner._zod.def as { type: string; options?: AnySchema[]; discriminator?: string };
  if (def.type !== 'union' || !def.options) return undefined;
  const options = def.options.map((o) => unwrap(o).inner).filter((o): o is z.core.$ZodObject => o._zod.def.type === 'object');
  return options.length > 0 ? { options, discriminator: def.discriminator } : undefined;
}

function elementOf(inner: AnySchema): AnySchema | undefined {
  const def = inner._zod.def as { type: string; element?: AnySchema };
  return def.type === 'array' ? def.element : undefined;
}

function shapeOf(o: z.core.$ZodObject): Record<string, AnySchema> {
  return (o._zod.def as z.core.$ZodObjectDef).shape as Record<string, AnySchema>;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function discriminatorValue(option: z.core.$ZodObject, discriminator: string): unknown {
  const d = shapeOf(option)[discriminator];
  if (!d) return undefined;
  const def = unwrap(d).inner._zod.def as { type: string; values?: unknown[] };
  return def.type === 'literal' ? def.values?.[0] : undefined;
}

/** For a union: the option the value selects by its discriminator, or the only one its keys fit. */
function selectedOption(u: { options: z.core.$ZodObject[]; discriminator?: string }, value: unknown): z.core.$ZodObject | undefined {
  if (!isPlainObject(value)) return undefined;
  if (u.discriminator) return u.options.find((o) => discriminatorValue(o, u.discriminator!) === value[u.discriminator!]);
  const fitting = u.options.filter((o) => Object.keys(value).every((k) => k in shapeOf(o)));
  return fitting.length === 1 ? fitting[0] : undefined;
}

/** The keys allowed directly under a schema node (for "did you mean" and error texts). */
export function knownKeys(schema: AnySchema, value?: unknown): string[] {
  const { inner } = unwrap(schema);
  if (inner._zod.def.type === 'object') return Object.keys(shapeOf(inner as z.core.$ZodObject));
  const u = objectOptions(inner);
  if (u) {
    const chosen = selectedOption(u, value);
    const keys = (chosen ? [chosen] : u.options).flatMap((o) => Object.keys(shapeOf(o)));
    return [...new Set(keys)];
  }
  return [];
}

export interface ResolveOptions {
  /**
   * A name under a record (a connection name) that is not in the file yet: environment variables
   * are usually written in capitals, so an all-capital name is taken in lower case.
   */
  foldNewNames?: boolean;
}

export type Resolved =
  | {
      ok: true;
      /** The path with the schema's spelling of each key (and the file's spelling of names). */
      segments: string[];
      /** Schema at each segment (wrappers included, so defaults can be read). */
      schemas: AnySchema[];
    }
  | {
      ok: false;
      /** Index of the segment that does not fit. */
      at: number;
      segments: string[];
      /** unknown: no such key; leaf: the parent holds a single value; name: not a valid record key. */
      reason: 'unknown' | 'leaf' | 'name';
      known: string[];
    };

/**
 * Resolve a path written by an admin (env variable, CLI argument) against the schema and the raw
 * value it applies to. Keys match case-insensitively; names under records match existing names
 * case-insensitively.
 */
export function resolvePath(root: AnySchema, given: string[], raw: unknown, options: ResolveOptions = {}): Resolved {
  const segments: string[] = [];
  const schemas: AnySchema[] = [];
  let schema = root;
  let value: unknown = raw;
  for (let i = 0; i < given.length; i++) {
    const want = given[i]!;
    const { inner } = unwrap(schema);
    const type = inner._zod.def.type;
    let next: AnySchema | undefined;
    let key: string | undefined;
    if (type === 'record') {
      const def = inner._zod.def as z.core.$ZodRecordDef;
      const existing = isPlainObject(value) ? Object.keys(value) : [];
      key = existing.find((k) => k === want) ?? existing.find((k) => k.toLowerCase() === want.toLowerCase());
      if (key === undefined) key = options.foldNewNames && want === want.toUpperCase() ? want.toLowerCase() : want;
      if (!(def.keyType as z.ZodType).safeParse(key).success) {
        return { ok: false, at: i, segments: [...segments, key, ...given.slice(i + 1)], reason: 'name', known: existing };
      }
      next = def.valueType as AnySchema;
    } else if (type === 'object' || objectOptions(inner)) {
      const u = objectOptions(inner);
      const candidates: z.core.$ZodObject[] = u
        ? [selectedOption(u, value), ...u.options].filter((o): o is z.core.$ZodObject => o !== undefined)
        : [inner as z.core.$ZodObject];
      for (const o of candidates) {
        const shape = shapeOf(o);
        key = Object.keys(shape).find((k) => k === want) ?? Object.keys(shape).find((k) => k.toLowerCase() === want.toLowerCase());
        if (key !== undefined) {
          next = shape[key];
          break;
        }
      }
      if (key === undefined || !next) {
        return { ok: false, at: i, segments: [...segments, ...given.slice(i)], reason: 'unknown', known: knownKeys(schema, value) };
      }
    } else if (elementOf(inner)) {
      // A list item by its index; only items that exist (a new list item is written in the file).
      const length = Array.isArray(value) ? value.length : 0;
      if (!/^\d+$/.test(want) || Number(want) >= length) {
        return { ok: false, at: i, segments: [...segments, ...given.slice(i)], reason: 'unknown', known: Array.from({ length }, (_, n) => String(n)) };
      }
      key = String(Number(want));
      next = elementOf(inner)!;
    } else {
      return { ok: false, at: i, segments: [...segments, ...given.slice(i)], reason: 'leaf', known: [] };
    }
    segments.push(key);
    schemas.push(next);
    schema = next;
    value = isPlainObject(value) ? value[key] : Array.isArray(value) ? value[Number(key)] : undefined;
  }
  return { ok: true, segments, schemas };
}

export interface SchemaField {
  /** Pattern of the path: `<name>` for a name under a record, `<n>` for a list index. */
  path: string;
  /** The last key (for a record's values, the key the record sits under). */
  key: string;
  description: string;
  secret: boolean;
  /** The unwrapped type: string, object, record, array, union, number, … */
  type: string;
}

/** Every field of the schema, containers included, each once (union options merged). */
export function schemaFields(root: AnySchema): SchemaField[] {
  const out = new Map<string, SchemaField>();
  const walk = (schema: AnySchema, path: string[], key: string): void => {
    const { inner, meta } = unwrap(schema);
    const type = inner._zod.def.type;
    if (path.length) {
      const p = path.join('.');
      const prior = out.get(p);
      const description = typeof meta.description === 'string' ? meta.description : '';
      out.set(p, { path: p, key, description: prior?.description || description, secret: meta.secret === true || prior?.secret === true, type });
    }
    if (meta.secret === true) return;
    if (type === 'object') {
      for (const [k, child] of Object.entries(shapeOf(inner as z.core.$ZodObject))) walk(child, [...path, k], k);
    } else if (type === 'record') {
      walk((inner._zod.def as z.core.$ZodRecordDef).valueType as AnySchema, [...path, '<name>'], key);
    } else if (elementOf(inner)) {
      walk(elementOf(inner)!, [...path, '<n>'], key);
    } else {
      const u = objectOptions(inner);
      if (u) for (const o of u.options) walk(o, path, key);
    }
  };
  walk(root, [], '');
  return [...out.values()];
}

/** Every secret field of the schema as a pattern; `<name>` stands for a name under a record, `<n>` for a list index. */
export function secretPatterns(root: AnySchema): string[] {
  return schemaFields(root)
    .filter((f) => f.secret)
    .map((f) => f.path);
}

export interface SecretSlot {
  /** Dotted path, e.g. connections.contoso.clientSecret. */
  path: string;
  segments: string[];
  /** The stored value (enc:v1:… or plain text); undefined when not set. */
  value: unknown;
  schema: AnySchema;
  /** The object the field sits in, and its schema's shape (to see which alternatives are set). */
  siblings?: Record<string, unknown>;
  parent?: Record<string, AnySchema>;
}

/**
 * Whether an unset secret slot is a gap: the field is required, or it is the only kind of credential
 * its section offers that none is set for (a connection with a certificate needs no clientSecret).
 */
export function slotNeeded(slot: SecretSlot): boolean {
  if (defaultOf(slot.schema) === undefined && !(slot.schema as z.ZodType).safeParse(undefined).success) return true;
  if (!slot.parent || !slot.siblings || unwrap(slot.parent[slot.segments.at(-1)!]!).meta.credential !== true) return false;
  const credentials = Object.entries(slot.parent).filter(([, s]) => unwrap(s).meta.credential === true);
  return credentials.every(([k]) => slot.siblings![k] === undefined);
}

/**
 * The secret fields a given configuration has room for: every secret field whose section exists
 * (a connection's clientSecret, a certificate's password once there is a certificate, store.url
 * when the store is postgres), set or not.
 */
export function secretSlots(root: AnySchema, raw: unknown): SecretSlot[] {
  return slotsWhere(root, raw, isSecretSchema);
}

/** The secret slots and the password-hash slots (isHiddenSchema) of a configuration: what no answer shows. */
export function hiddenSlots(root: AnySchema, raw: unknown): SecretSlot[] {
  return slotsWhere(root, raw, isHiddenSchema);
}

/** The paths of files mailbridge reads (`file: true`, config/pem-files.ts) that a configuration sets. */
export function fileSlots(root: AnySchema, raw: unknown): SecretSlot[] {
  return slotsWhere(root, raw, (schema) => unwrap(schema).meta.file === true).filter((slot) => typeof slot.value === 'string');
}

function slotsWhere(root: AnySchema, raw: unknown, isSlot: (schema: AnySchema) => boolean): SecretSlot[] {
  const out: SecretSlot[] = [];
  const walk = (schema: AnySchema, value: unknown, path: string[]): void => {
    const { inner } = unwrap(schema);
    const element = elementOf(inner);
    if (element && Array.isArray(value)) {
      value.forEach((item, i) => {
        const p = [...path, String(i)];
        if (isSlot(element)) out.push({ path: p.join('.'), segments: p, value: item, schema: element });
        else walk(element, item, p);
      });
      return;
    }
    if (!isPlainObject(value)) return;
    const type = inner._zod.def.type;
    let shape: Record<string, AnySchema> | undefined;
    if (type === 'object') shape = shapeOf(inner as z.core.$ZodObject);
    else if (type === 'record') {
      const vt = (inner._zod.def as z.core.$ZodRecordDef).valueType as AnySchema;
      for (const [k, v] of Object.entries(value)) {
        // A map of secrets (notify.api.keys.<name>): each entry is a slot of its own.
        if (isSlot(vt)) out.push({ path: [...path, k].join('.'), segments: [...path, k], value: v, schema: vt });
        else walk(vt, v, [...path, k]);
      }
      return;
    } else {
      const u = objectOptions(inner);
      const chosen = u && selectedOption(u, value);
      if (chosen) shape = shapeOf(chosen);
    }
    if (!shape) return;
    for (const [k, child] of Object.entries(shape)) {
      const p = [...path, k];
      if (isSlot(child)) out.push({ path: p.join('.'), segments: p, value: value[k], schema: child, siblings: value, parent: shape });
      else walk(child, value[k], p);
    }
  };
  walk(root, raw, []);
  return out;
}

/** Keys of an object schema whose metadata carries `mark: true` (e.g. credential). */
export function markedKeys(schema: AnySchema, mark: string): string[] {
  const { inner } = unwrap(schema);
  if (inner._zod.def.type !== 'object') return [];
  return Object.entries(shapeOf(inner as z.core.$ZodObject))
    .filter(([, child]) => unwrap(child).meta[mark] === true)
    .map(([k]) => k);
}

/** Schema default of a node (e.g. the default store section), if it has one. */
export function defaultOf(schema: AnySchema): unknown {
  const r = (schema as z.ZodType).safeParse(undefined);
  return r.success ? r.data : undefined;
}

/**
 * The known key closest to a mistyped one, or undefined when none is close. Comparison ignores
 * case and the separators people add (client_secret, client-secret → clientSecret).
 */
export function closest(given: string, known: string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const g = norm(given);
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    const d = distance(g, norm(k));
    if (d < bestScore) {
      best = k;
      bestScore = d;
    }
  }
  const limit = g.length <= 4 ? 1 : g.length <= 8 ? 2 : 3;
  return best !== undefined && bestScore <= limit ? best : undefined;
}

/** Optimal string alignment distance: edits, with a swap of neighbours counting as one. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
