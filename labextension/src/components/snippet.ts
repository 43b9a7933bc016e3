/**
 * Read snippets for the catalog panel: Python a researcher can paste into a
 * cell to read a dataset location or connect to a source.
 *
 * The reads go through the readers the kernel guard governs (pandas), so the
 * snippet is also the governed way to read. `connect` is exported by the
 * `jupyter_guard` package itself (jupyter_guard/__init__.py):
 * `jupyter_guard.kernel.connect` is a module, not the function.
 */

/** One catalog location of a dataset. */
export interface ISnippetLocation {
  kind: 'path' | 'uri' | 'table';
  location: string;
}

export const PANDAS_IMPORT = 'import pandas as pd';
export const CONNECT_IMPORT = 'from jupyter_guard import connect';

/** How pandas reads one format: the reader and extra arguments. */
interface IReader {
  fn: string;
  args: string;
}

/** A Python string literal (JSON's escapes are all valid Python escapes). */
export function pyString(text: string): string {
  return JSON.stringify(text);
}

/** Compression suffixes pandas handles itself: `x.csv.gz` is read like `x.csv`. */
const COMPRESSION = /\.(gz|bz2|zip|xz|zst|tar)$/i;

/** The lower-case extension of a path or URI (query, fragment and compression ignored). */
export function extensionOf(location: string): string {
  let text = location.split(/[?#]/)[0];
  text = text.replace(COMPRESSION, '');
  const base = text.slice(text.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  return dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
}

/** The pandas reader for an extension, or null for a format we do not know. */
export function readerFor(extension: string): IReader | null {
  switch (extension) {
    case 'csv':
      return { fn: 'read_csv', args: '' };
    case 'tsv':
      return { fn: 'read_csv', args: ', sep="\\t"' };
    case 'parquet':
    case 'pq':
      return { fn: 'read_parquet', args: '' };
    case 'json':
      return { fn: 'read_json', args: '' };
    case 'jsonl':
    case 'ndjson':
      return { fn: 'read_json', args: ', lines=True' };
    case 'xlsx':
    case 'xls':
      return { fn: 'read_excel', args: '' };
    case 'feather':
      return { fn: 'read_feather', args: '' };
    default:
      return null;
  }
}

/** The location has glob wildcards (`*`, `?`, `[...]`). */
export function isGlob(location: string): boolean {
  return /[*?[]/.test(location);
}

/** A directory location (trailing slash): governs everything below it. */
export function isDirectory(location: string): boolean {
  return location.endsWith('/');
}

function lines(...parts: string[]): string {
  return parts.join('\n') + '\n';
}

/** A relative path (no scheme, not absolute): catalog paths are relative to the server root. */
export function isRelativePath(location: string): boolean {
  return !location.startsWith('/') && !/^[a-z][a-z0-9+.-]*:/i.test(location);
}

// A kernel runs in its notebook's folder, while catalog paths start at the
// server root: say so rather than hand out a snippet that fails unexplained.
const RELATIVE_NOTE = '# The path is relative to the Jupyter root folder';

function pathNote(location: string, kind: 'path' | 'uri'): string[] {
  return kind === 'path' && isRelativePath(location) ? [RELATIVE_NOTE] : [];
}

/** A single file or object: `df = pd.read_csv("data/patients.csv")`. */
function fileSnippet(location: string, kind: 'path' | 'uri'): string {
  const reader = readerFor(extensionOf(location));
  if (!reader) {
    return lines(
      PANDAS_IMPORT,
      '',
      `# ${location}: unknown format; pick the pandas reader that fits`,
      ...pathNote(location, kind),
      `df = pd.read_csv(${pyString(location)})`
    );
  }
  return lines(
    PANDAS_IMPORT,
    '',
    ...pathNote(location, kind),
    `df = pd.${reader.fn}(${pyString(location)}${reader.args})`
  );
}

/** Many files: list them with glob (paths) or fsspec (URIs), read each, concatenate. */
function globSnippet(pattern: string, kind: 'path' | 'uri'): string {
  const reader = readerFor(extensionOf(pattern));
  const read = reader
    ? `pd.${reader.fn}(f${reader.args})`
    : 'pd.read_csv(f)  # pick the reader that fits the files';
  if (kind === 'uri') {
    return lines(
      PANDAS_IMPORT,
      'import fsspec',
      '',
      '# A pattern: read every matching object and put them together',
      `files = sorted(f.full_name for f in fsspec.open_files(${pyString(pattern)}))`,
      `df = pd.concat((${read} for f in files), ignore_index=True)`
    );
  }
  const recursive = pattern.includes('**') ? ', recursive=True' : '';
  return lines(
    PANDAS_IMPORT,
    'import glob',
    '',
    '# A pattern: read every matching file and put them together',
    ...pathNote(pattern, 'path'),
    `files = sorted(glob.glob(${pyString(pattern)}${recursive}))`,
    `df = pd.concat((${read} for f in files), ignore_index=True)`
  );
}

/** A folder location: every file below it is governed; list and pick. */
function directorySnippet(location: string): string {
  return lines(
    PANDAS_IMPORT,
    'import glob',
    '',
    `# ${location} is a folder: every file below it belongs to the dataset`,
    ...pathNote(location, 'path'),
    `files = sorted(glob.glob(${pyString(location + '**/*')}, recursive=True))`,
    'df = pd.read_csv(files[0])  # pick the file and the reader that fit'
  );
}

/**
 * `source.schema.table` with a known source: read through `connect`.
 * Anything else (unknown source, wildcard): a read_sql placeholder.
 */
function tableSnippet(table: string, sources: readonly string[]): string {
  // Longest source name first: a source may itself contain dots ("dw.eu").
  const source = [...sources]
    .sort((a, b) => b.length - a.length)
    .find(name => table.startsWith(`${name}.`));
  const rest = source ? table.slice(source.length + 1) : '';
  if (source && rest && !isGlob(table)) {
    const query = `SELECT * FROM ${rest} LIMIT 1000`;
    return lines(
      PANDAS_IMPORT,
      CONNECT_IMPORT,
      '',
      `df = pd.read_sql(${pyString(query)}, connect(${pyString(source)}))`
    );
  }
  if (source && rest) {
    // A wildcard location: the source is known, the table is to be named.
    return lines(
      PANDAS_IMPORT,
      CONNECT_IMPORT,
      '',
      `# ${table} is a pattern: put one of its tables in the query`,
      `df = pd.read_sql(${pyString('SELECT * FROM <table> LIMIT 1000')}, connect(${pyString(source)}))`
    );
  }
  const name = isGlob(table) ? '<table>' : table;
  return lines(
    PANDAS_IMPORT,
    '',
    `# Table ${table}: no catalog source to connect() to; use your own connection`,
    'con = ...  # a SQLAlchemy engine or connection',
    `df = pd.read_sql(${pyString(`SELECT * FROM ${name} LIMIT 1000`)}, con)`
  );
}

/** The read snippet of one location; `sources` are the catalog's source names. */
export function readSnippet(
  location: ISnippetLocation,
  sources: readonly string[] = []
): string {
  const where = location.location;
  switch (location.kind) {
    case 'table':
      return tableSnippet(where, sources);
    case 'uri':
      return isGlob(where) ? globSnippet(where, 'uri') : fileSnippet(where, 'uri');
    case 'path':
    default:
      if (isDirectory(where)) {
        return directorySnippet(where);
      }
      return isGlob(where)
        ? globSnippet(where, 'path')
        : fileSnippet(where, 'path');
  }
}

/** The snippet of a dataset: its first location's (paths before URIs before tables). */
export function datasetSnippet(
  locations: readonly ISnippetLocation[],
  sources: readonly string[] = []
): string | null {
  const order = { path: 0, uri: 1, table: 2 };
  const first = [...locations].sort((a, b) => order[a.kind] - order[b.kind])[0];
  return first ? readSnippet(first, sources) : null;
}

/** The snippet of a data source: a SQLAlchemy engine from `connect`. */
export function sourceSnippet(name: string): string {
  return lines(
    PANDAS_IMPORT,
    CONNECT_IMPORT,
    '',
    `con = connect(${pyString(name)})`,
    'df = pd.read_sql("SELECT 1", con)  # your query here'
  );
}
