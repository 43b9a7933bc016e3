import {
  CONNECT_IMPORT,
  PANDAS_IMPORT,
  datasetSnippet,
  extensionOf,
  isRelativePath,
  pyString,
  readSnippet,
  sourceSnippet
} from '../../components/snippet';

const SOURCES = ['warehouse', 'registry'];

function path(location: string) {
  return readSnippet({ kind: 'path', location }, SOURCES);
}

describe('extensionOf', () => {
  it('finds the extension, ignoring compression, query and fragment', () => {
    expect(extensionOf('data/patients.csv')).toBe('csv');
    expect(extensionOf('data/patients.CSV.gz')).toBe('csv');
    expect(extensionOf('s3://b/x.parquet?versionId=3#frag')).toBe('parquet');
    expect(extensionOf('data/README')).toBe('');
    expect(extensionOf('data/.hidden')).toBe('');
  });
});

describe('pyString', () => {
  it('quotes and escapes for Python', () => {
    expect(pyString('a "b" \\ c')).toBe('"a \\"b\\" \\\\ c"');
  });
});

describe('readSnippet for paths', () => {
  it('starts every snippet with the pandas import', () => {
    for (const loc of ['a.csv', 'a.parquet', 'a.json', 'a/*.csv', 'a/', 'a.bin']) {
      expect(path(loc).split('\n')[0]).toBe(PANDAS_IMPORT);
    }
  });

  it('reads csv', () => {
    expect(path('data/patients.csv')).toContain('df = pd.read_csv("data/patients.csv")');
  });

  it('reads parquet', () => {
    expect(path('/srv/lake/p.parquet')).toContain('df = pd.read_parquet("/srv/lake/p.parquet")');
  });

  it('reads json, and jsonl as lines', () => {
    expect(path('x.json')).toContain('df = pd.read_json("x.json")\n');
    expect(path('x.jsonl')).toContain('df = pd.read_json("x.jsonl", lines=True)');
  });

  it('reads excel', () => {
    expect(path('book.xlsx')).toContain('df = pd.read_excel("book.xlsx")');
  });

  it('reads a compressed csv with read_csv', () => {
    expect(path('x.csv.gz')).toContain('pd.read_csv("x.csv.gz")');
  });

  it('reads a glob with glob and concat', () => {
    const text = path('data/visits/*.csv');
    expect(text.split('\n').slice(0, 2)).toEqual([PANDAS_IMPORT, 'import glob']);
    expect(text).toMatch(/^# A pattern/m);
    expect(text).toContain('files = sorted(glob.glob("data/visits/*.csv"))');
    expect(text).toContain('df = pd.concat((pd.read_csv(f) for f in files), ignore_index=True)');
  });

  it('reads a recursive glob recursively, with the reader of its extension', () => {
    const text = path('/srv/lake/**/patients-*.parquet');
    expect(text).toContain('glob.glob("/srv/lake/**/patients-*.parquet", recursive=True)');
    expect(text).toContain('pd.read_parquet(f)');
    expect(text).not.toContain('relative to the Jupyter root');
  });

  it('lists the files of a folder location', () => {
    const text = path('data/archive/');
    expect(text).toContain('data/archive/ is a folder');
    expect(text).toContain('glob.glob("data/archive/**/*", recursive=True)');
  });

  it('says relative paths start at the Jupyter root', () => {
    expect(isRelativePath('data/x.csv')).toBe(true);
    expect(isRelativePath('/srv/x.csv')).toBe(false);
    expect(isRelativePath('s3://b/x.csv')).toBe(false);
    expect(path('data/x.csv')).toContain('relative to the Jupyter root');
  });

  it('gives a generic reader with a comment for an unknown format', () => {
    const text = path('data/blob.bin');
    expect(text).toContain('unknown format');
    expect(text).toContain('pd.read_csv("data/blob.bin")');
  });
});

describe('readSnippet for URIs', () => {
  it('reads a URI by its extension', () => {
    const text = readSnippet({ kind: 'uri', location: 's3://bucket/p/visits.parquet' });
    expect(text).toBe(`${PANDAS_IMPORT}\n\ndf = pd.read_parquet("s3://bucket/p/visits.parquet")\n`);
  });

  it('reads a URI pattern through fsspec', () => {
    const text = readSnippet({ kind: 'uri', location: 's3://clinical-bucket/patients/*.jsonl' });
    expect(text.split('\n')[0]).toBe(PANDAS_IMPORT);
    expect(text).toContain('import fsspec');
    expect(text).toContain('fsspec.open_files("s3://clinical-bucket/patients/*.jsonl")');
    expect(text).toContain('pd.read_json(f, lines=True)');
  });
});

describe('readSnippet for tables', () => {
  it('reads source.schema.table through connect', () => {
    const text = readSnippet({ kind: 'table', location: 'warehouse.clinical.patients' }, SOURCES);
    expect(text).toBe(
      [
        PANDAS_IMPORT,
        CONNECT_IMPORT,
        '',
        'df = pd.read_sql("SELECT * FROM clinical.patients LIMIT 1000", connect("warehouse"))',
        ''
      ].join('\n')
    );
  });

  it('imports connect from the jupyter_guard package', () => {
    expect(CONNECT_IMPORT).toBe('from jupyter_guard import connect');
  });

  it('prefers the longest matching source name', () => {
    const text = readSnippet({ kind: 'table', location: 'dw.eu.sales.orders' }, ['dw', 'dw.eu']);
    expect(text).toContain('connect("dw.eu")');
    expect(text).toContain('SELECT * FROM sales.orders LIMIT 1000');
  });

  it('gives a placeholder for an unknown source', () => {
    const text = readSnippet({ kind: 'table', location: 'other.s.t' }, SOURCES);
    expect(text).not.toContain(CONNECT_IMPORT);
    expect(text).toContain('con = ...');
    expect(text).toContain('pd.read_sql("SELECT * FROM other.s.t LIMIT 1000", con)');
  });

  it('gives a placeholder query for a wildcard table of a known source', () => {
    const text = readSnippet({ kind: 'table', location: 'warehouse.clinical.*' }, SOURCES);
    expect(text).toContain('warehouse.clinical.* is a pattern');
    expect(text).toContain(
      'pd.read_sql("SELECT * FROM <table> LIMIT 1000", connect("warehouse"))'
    );
  });

  it('gives a placeholder for a wildcard table of an unknown source', () => {
    const text = readSnippet({ kind: 'table', location: 'elsewhere.*' }, SOURCES);
    expect(text).not.toContain(CONNECT_IMPORT);
    expect(text).not.toContain('connect("');
    expect(text).toContain('SELECT * FROM <table> LIMIT 1000');
  });
});

describe('datasetSnippet and sourceSnippet', () => {
  it('uses the first path before URIs and tables', () => {
    const text = datasetSnippet(
      [
        { kind: 'table', location: 'warehouse.clinical.patients' },
        { kind: 'uri', location: 's3://b/p.csv' },
        { kind: 'path', location: 'data/patients.csv' }
      ],
      SOURCES
    );
    expect(text).toContain('pd.read_csv("data/patients.csv")');
  });

  it('is null without locations', () => {
    expect(datasetSnippet([], SOURCES)).toBeNull();
  });

  it('connects to a source by name', () => {
    const text = sourceSnippet('warehouse');
    expect(text.split('\n').slice(0, 2)).toEqual([PANDAS_IMPORT, CONNECT_IMPORT]);
    expect(text).toContain('con = connect("warehouse")');
  });
});
