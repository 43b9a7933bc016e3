import { Widget } from '@lumino/widgets';

import { IAuditQueryParams } from '../../components/auditQuery';
import { AuditViewer, auditEndpoint, IAuditViewerApi, MARK_FIRST_PAGE } from '../../components/auditViewer';
import { IAuditPage, IAuditVerify } from '../../tokens';
import { makeRecord } from './auditFixtures';

const flush = () => new Promise(resolve => setTimeout(resolve, 0));

/** Let the page prefetches (two pages ahead) finish. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await flush();
  }
}

/** A server of `total` records, newest first, 28 px rows; records of nb.ipynb have kernel k-1. */
function makeApi(total = 1000, overrides: Partial<IAuditViewerApi> = {}) {
  const fetchPage = jest.fn(async (params: IAuditQueryParams): Promise<IAuditPage> => {
    if (params.order === 'asc') {
      // a timeline request
      const records = [
        makeRecord(total - 1, { kernel_id: 'k-1', notebook: 'nb.ipynb', event_type: 'cell_execution' }),
        makeRecord(total - 2, { kernel_id: 'k-2', notebook: 'nb.ipynb' }),
        makeRecord(5, { kernel_id: null, notebook: 'nb.ipynb', event_type: 'export' })
      ];
      return { records, next: null };
    }
    const limit = params.limit ?? 100;
    const start = params.after ?? total + 1;
    const records = [];
    for (let seq = start - 1; seq >= 1 && records.length < limit; seq--) {
      records.push(
        makeRecord(seq, seq === total - 1 ? { kernel_id: 'k-1', notebook: 'nb.ipynb', event_type: 'cell_execution' } : {})
      );
    }
    return { records, next: records.length === limit ? records[records.length - 1].seq : null };
  });
  const verify = jest.fn(
    async (): Promise<IAuditVerify> => ({ ok: true, checked: total, first_bad_seq: null, problem: null, head_seq: total })
  );
  const api: IAuditViewerApi = {
    fetchPage,
    verify,
    labels: jest.fn(async () => ['public', 'internal', 'confidential']),
    exportUrl: (format, filters) => `/export?format=${format}&${new URLSearchParams(filters as Record<string, string>).toString()}`,
    ...overrides
  };
  return { api, fetchPage, verify };
}

function makeViewer(api: IAuditViewerApi, pageSize = 50) {
  const painted: (() => void)[] = [];
  const viewer = new AuditViewer({
    api,
    pageSize,
    locale: 'en-US',
    timelineDelay: 0,
    afterPaint: cb => painted.push(cb)
  });
  Object.defineProperty(viewer.list.node, 'clientHeight', { configurable: true, get: () => 280 });
  Widget.attach(viewer, document.body);
  return { viewer, painted };
}

function field(viewer: AuditViewer, name: string): HTMLInputElement | HTMLSelectElement {
  return viewer.node.querySelector(`.jp-guard-audit-filters [name="${name}"]`)!;
}

function rows(viewer: AuditViewer): HTMLElement[] {
  return Array.from(viewer.node.querySelectorAll<HTMLElement>('.jp-guard-audit-list .jp-guard-audit-row'));
}

describe('AuditViewer', () => {
  let marks: string[];
  let markSpy: jest.SpyInstance | null = null;

  beforeEach(() => {
    marks = [];
    if (typeof performance.mark !== 'function') {
      (performance as any).mark = () => undefined;
    }
    markSpy = jest.spyOn(performance, 'mark').mockImplementation(((name: string) => {
      // record how many rows were in the DOM when the mark was set
      marks.push(`${name}:${document.querySelectorAll('.jp-guard-audit-row[data-seq]').length}`);
      return undefined as any;
    }) as any);
  });

  afterEach(() => {
    markSpy?.mockRestore();
    document.body.innerHTML = '';
  });

  it('has the stable id, classes, filter fields and export links', () => {
    const { api } = makeApi();
    const { viewer } = makeViewer(api);
    expect(viewer.node.id).toBe('jp-guard-audit');
    expect(viewer.hasClass('jp-guard-audit-viewer')).toBe(true);
    expect(viewer.title.label).toBe('Audit log');
    for (const name of ['user', 'dataset', 'notebook', 'label', 'decision', 'event_type', 'since', 'until']) {
      expect(field(viewer, name)).not.toBeNull();
    }
    expect((field(viewer, 'since') as HTMLInputElement).type).toBe('datetime-local');
    const decisions = Array.from((field(viewer, 'decision') as HTMLSelectElement).options).map(o => o.value);
    expect(decisions).toEqual(['any', 'allow', 'redact', 'justify', 'deny', 'requested', 'error']);
    const events = Array.from((field(viewer, 'event_type') as HTMLSelectElement).options).map(o => o.value);
    expect(events).toContain('classification_proposal');
    expect(viewer.node.querySelector('.jp-guard-audit-apply')).not.toBeNull();
    expect(viewer.node.querySelector('a.jp-guard-audit-export[data-format="csv"]')).not.toBeNull();
    expect(viewer.node.querySelector('a.jp-guard-audit-export[data-format="jsonl"]')).not.toBeNull();
    expect(viewer.node.querySelector<HTMLElement>('.jp-guard-audit-verify')!.dataset.state).toBe('pending');
    expect(viewer.node.querySelector('.jp-guard-audit-list')).not.toBeNull();
    expect(viewer.node.querySelector('.jp-guard-audit-detail')).not.toBeNull();
    viewer.dispose();
  });

  it('renders the first page, marks it, and verifies only after it is painted', async () => {
    const { api, verify, fetchPage } = makeApi(1000);
    const { viewer, painted } = makeViewer(api);
    await viewer.start();
    expect(fetchPage).toHaveBeenCalledWith({ limit: 50, order: 'desc' }, expect.anything());
    const shown = rows(viewer);
    expect(shown.length).toBeGreaterThan(0);
    expect(shown.length).toBeLessThan(40); // 10 visible + overscan, not 50
    expect(shown.map(r => r.dataset.seq)).toContain('1000');
    // the mark came after the rows were in the DOM
    expect(marks).toEqual([`${MARK_FIRST_PAGE}:${shown.length}`]);
    expect(verify).not.toHaveBeenCalled();
    expect(painted).toHaveLength(1);
    painted[0]();
    await flush();
    expect(verify).toHaveBeenCalledTimes(1);
    const badge = viewer.node.querySelector<HTMLElement>('.jp-guard-audit-verify')!;
    expect(badge.dataset.state).toBe('ok');
    expect(badge.textContent).toBe('Chain verified: 1,000 records');
    // the label filter became a select of the catalog's labels
    const label = field(viewer, 'label');
    expect(label).toBeInstanceOf(HTMLSelectElement);
    expect(Array.from((label as HTMLSelectElement).options).map(o => o.value)).toEqual([
      'any',
      'public',
      'internal',
      'confidential'
    ]);
    viewer.dispose();
  });

  it('shows tampering and failures in the badge, and verifies again on demand', async () => {
    const verify = jest
      .fn()
      .mockResolvedValueOnce({ ok: false, checked: 10, first_bad_seq: 1234, problem: 'mac mismatch', head_seq: 99 })
      .mockRejectedValueOnce(new Error('timeout'));
    const { api } = makeApi(100, { verify });
    const { viewer } = makeViewer(api);
    const badge = viewer.node.querySelector<HTMLElement>('.jp-guard-audit-verify')!;
    await viewer.verify();
    expect(badge.dataset.state).toBe('tampered');
    expect(badge.textContent).toBe('TAMPERED at record 1,234: mac mismatch');
    viewer.node.querySelector<HTMLButtonElement>('.jp-guard-audit-verify-rerun')!.click();
    expect(badge.dataset.state).toBe('pending');
    await flush();
    expect(badge.dataset.state).toBe('error');
    expect(badge.textContent).toBe('Verification failed: timeout');
    viewer.dispose();
  });

  it('applies the filters (ISO times, empty omitted) and updates the export links', async () => {
    const { api, fetchPage } = makeApi(1000);
    const { viewer } = makeViewer(api);
    await viewer.start();
    await settle();
    (field(viewer, 'dataset') as HTMLInputElement).value = ' sales ';
    (field(viewer, 'decision') as HTMLSelectElement).value = 'deny';
    (field(viewer, 'since') as HTMLInputElement).value = '2026-03-01T08:00';
    const before = fetchPage.mock.calls.length;
    viewer.node.querySelector<HTMLButtonElement>('.jp-guard-audit-apply')!.click();
    const since = new Date(2026, 2, 1, 8, 0).toISOString();
    expect(fetchPage).toHaveBeenNthCalledWith(
      before + 1,
      { dataset: 'sales', decision: 'deny', since, limit: 50, order: 'desc' },
      expect.anything()
    );
    const csv = viewer.node.querySelector<HTMLAnchorElement>('a.jp-guard-audit-export[data-format="csv"]')!;
    expect(csv.getAttribute('href')).toBe(
      `/export?format=csv&dataset=sales&decision=deny&since=${encodeURIComponent(since)}`
    );

    // Enter in a field applies too
    await settle();
    (field(viewer, 'user') as HTMLInputElement).value = 'bob';
    field(viewer, 'user').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
    expect(fetchPage).toHaveBeenLastCalledWith(
      expect.objectContaining({ user: 'bob', dataset: 'sales' }),
      expect.anything()
    );

    // Clear empties everything
    await settle();
    viewer.node.querySelector<HTMLButtonElement>('.jp-guard-audit-clear')!.click();
    expect(fetchPage).toHaveBeenLastCalledWith({ limit: 50, order: 'desc' }, expect.anything());
    viewer.dispose();
  });

  it('says when no record matches, and shows server errors inline', async () => {
    const { api } = makeApi(0);
    const { viewer } = makeViewer(api);
    await viewer.start();
    const footer = viewer.node.querySelector<HTMLElement>('.jp-guard-audit-footer')!;
    expect(footer.textContent).toBe('No records match these filters');
    expect(footer.classList.contains('jp-guard-audit-empty')).toBe(true);

    const failing = makeApi(10, {
      fetchPage: jest.fn().mockRejectedValue(new Error('bad audit query: Invalid isoformat string'))
    });
    const second = makeViewer(failing.api);
    await second.viewer.start();
    const error = second.viewer.node.querySelector<HTMLElement>('.jp-guard-audit-error')!;
    expect(error.hidden).toBe(false);
    expect(error.textContent).toBe('bad audit query: Invalid isoformat string');
    expect(second.painted).toHaveLength(0); // no verification after a failed first page
    viewer.dispose();
    second.viewer.dispose();
  });

  it('keeps two pages ahead of the visible rows with after=next, then says End of log', async () => {
    const { api, fetchPage } = makeApi(1000);
    const { viewer } = makeViewer(api, 50);
    await viewer.start();
    await settle();
    // rows 0..9 visible: pages are fetched until 2 pages (100 rows) lie below them
    expect(fetchPage.mock.calls.map(c => c[0].after)).toEqual([undefined, 951, 901]);
    expect(viewer.model.records).toHaveLength(150);
    const footer = viewer.node.querySelector<HTMLElement>('.jp-guard-audit-footer')!;
    expect(footer.dataset.state).toBe('idle');

    // scroll to row 60: now within 2 pages of the end
    let top = 60 * 28;
    Object.defineProperty(viewer.list.node, 'scrollTop', { configurable: true, get: () => top, set: v => (top = v) });
    viewer.list.render();
    await settle();
    expect(fetchPage.mock.calls.map(c => c[0].after)).toEqual([undefined, 951, 901, 851]);

    const small = makeApi(120);
    const second = makeViewer(small.api, 50);
    await second.viewer.start();
    await settle();
    expect(second.viewer.model.records).toHaveLength(120);
    const end = second.viewer.node.querySelector<HTMLElement>('.jp-guard-audit-footer')!;
    expect(end.textContent).toBe('End of log');
    expect(small.fetchPage).toHaveBeenCalledTimes(3);
    viewer.dispose();
    second.viewer.dispose();
  });

  it('shows the detail and the session timeline of a selected row', async () => {
    const { api, fetchPage } = makeApi(1000);
    const { viewer } = makeViewer(api);
    await viewer.start();
    await settle();
    const row = rows(viewer).find(r => r.dataset.seq === '999')!;
    row.click();
    expect(row.getAttribute('aria-selected')).toBe('true');
    const detail = viewer.node.querySelector('.jp-guard-audit-detail')!;
    expect(detail.querySelector('.jp-guard-audit-field-seq')!.textContent).toBe('999');
    await flush();
    const record = viewer.model.records[1];
    const t = new Date(record.time).getTime();
    expect(fetchPage).toHaveBeenCalledWith(
      {
        notebook: 'nb.ipynb',
        user: 'alice',
        order: 'asc',
        limit: 1000,
        since: new Date(t - 12 * 3600 * 1000).toISOString(),
        until: new Date(t + 12 * 3600 * 1000).toISOString()
      },
      expect.anything()
    );
    const items = Array.from(detail.querySelectorAll<HTMLElement>('.jp-guard-audit-timeline .jp-guard-timeline-item'));
    // kernel k-1's record and the notebook's export, not kernel k-2's record
    expect(items.map(i => i.dataset.seq).sort()).toEqual(['5', '999']);

    // keyboard: down moves the selection
    viewer.list.node.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    expect(detail.querySelector('.jp-guard-audit-field-seq')!.textContent).toBe('998');
    expect(detail.querySelector('.jp-guard-audit-timeline')!.hasAttribute('hidden')).toBe(true);
    viewer.dispose();
  });

  it('selects a timeline item when clicked', async () => {
    const { api } = makeApi(1000);
    const { viewer } = makeViewer(api);
    await viewer.start();
    rows(viewer).find(r => r.dataset.seq === '999')!.click();
    await flush();
    const exportItem = viewer.node.querySelector<HTMLElement>('.jp-guard-timeline-item[data-seq="5"]')!;
    exportItem.click();
    // seq 5 is not among the loaded rows: its detail shows alone, the timeline stays
    expect(viewer.selected?.seq).toBe(5);
    expect(viewer.list.selectedIndex).toBe(-1);
    expect(viewer.node.querySelector('.jp-guard-timeline-item[data-seq="5"]')!.classList.contains('jp-mod-current')).toBe(true);
    viewer.node.querySelector<HTMLElement>('.jp-guard-timeline-item[data-seq="999"]')!.click();
    expect(viewer.list.selectedIndex).toBe(1);
    viewer.dispose();
  });
});

describe('auditEndpoint', () => {
  it('builds the GET audit endpoint', () => {
    expect(auditEndpoint({ limit: 1 })).toBe('audit?limit=1');
    expect(auditEndpoint({})).toBe('audit');
  });
});
