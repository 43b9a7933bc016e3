import {
  auditExportUrl,
  auditQueryString,
  cleanFilters,
  formatCount,
  formatTime,
  isoToLocalInput,
  localInputToIso,
  timeWindow,
  xsrfFromCookie
} from '../../components/auditQuery';

describe('localInputToIso', () => {
  it('reads a datetime-local value as local time and gives ISO UTC', () => {
    const iso = localInputToIso('2026-03-04T10:30');
    expect(iso).toBe(new Date(2026, 2, 4, 10, 30).toISOString());
    expect(iso).toMatch(/Z$/);
  });

  it('gives undefined for empty or invalid input', () => {
    expect(localInputToIso('')).toBeUndefined();
    expect(localInputToIso('   ')).toBeUndefined();
    expect(localInputToIso(undefined)).toBeUndefined();
    expect(localInputToIso('not a date')).toBeUndefined();
  });

  it('round-trips through isoToLocalInput', () => {
    const iso = localInputToIso('2026-12-31T23:59')!;
    expect(isoToLocalInput(iso)).toBe('2026-12-31T23:59');
    expect(isoToLocalInput('')).toBe('');
  });
});

describe('auditQueryString', () => {
  it('omits empty fields and "any"', () => {
    expect(
      auditQueryString({
        user: '  ',
        dataset: 'sales',
        label: '',
        decision: 'any',
        event_type: 'any',
        notebook: undefined
      })
    ).toBe('dataset=sales');
  });

  it('encodes values and appends cursor, limit and order', () => {
    const qs = auditQueryString({
      user: 'dana smith',
      notebook: 'work/a&b.ipynb',
      since: '2026-03-04T09:30:00.000Z',
      after: 1234,
      limit: 200,
      order: 'desc'
    });
    const params = new URLSearchParams(qs);
    expect(params.get('user')).toBe('dana smith');
    expect(params.get('notebook')).toBe('work/a&b.ipynb');
    expect(params.get('since')).toBe('2026-03-04T09:30:00.000Z');
    expect(params.get('after')).toBe('1234');
    expect(params.get('limit')).toBe('200');
    expect(params.get('order')).toBe('desc');
    expect(qs).not.toContain(' ');
    expect(qs).toContain('a%26b');
  });

  it('passes after=0 but not a null cursor', () => {
    expect(auditQueryString({ after: 0, limit: 5 })).toBe('after=0&limit=5');
    expect(auditQueryString({ after: null, limit: 5 })).toBe('limit=5');
  });

  it('cleanFilters trims and drops unknown keys', () => {
    expect(cleanFilters({ user: ' dana ', label: 'any', ...({ bogus: 'x' } as object) })).toEqual({
      user: 'dana'
    });
  });
});

describe('auditExportUrl', () => {
  it('builds the export URL with format and filters', () => {
    const url = auditExportUrl('http://localhost:8888/user/dana/', 'csv', {
      dataset: 'sales',
      decision: 'deny',
      user: ''
    });
    expect(url).toBe(
      'http://localhost:8888/user/dana/jupyter-guard/api/audit/export?format=csv&dataset=sales&decision=deny'
    );
  });

  it('adds the _xsrf cookie as JupyterLab download links do', () => {
    const url = auditExportUrl('http://h/', 'jsonl', {}, 'a=1; _xsrf=2|abc; b=3');
    expect(url).toBe('http://h/jupyter-guard/api/audit/export?format=jsonl&_xsrf=2%7Cabc');
    expect(xsrfFromCookie('nothing=here')).toBeNull();
  });
});

describe('timeWindow', () => {
  it('spans 12 hours either side', () => {
    expect(timeWindow('2026-03-04T12:00:00Z')).toEqual({
      since: '2026-03-04T00:00:00.000Z',
      until: '2026-03-05T00:00:00.000Z'
    });
    expect(timeWindow('garbage')).toBeNull();
  });
});

describe('formatting', () => {
  it('puts thousands separators in counts', () => {
    expect(formatCount(1_000_000, 'en-US')).toBe('1,000,000');
    expect(formatCount(7, 'en-US')).toBe('7');
  });

  it('formats times in the locale and keeps unparsable text', () => {
    const text = formatTime('2026-03-04T12:00:00Z', 'en-US');
    expect(text).toContain('2026');
    expect(text).not.toContain('T12');
    expect(formatTime('yesterday')).toBe('yesterday');
    expect(formatTime(null)).toBe('');
  });
});
