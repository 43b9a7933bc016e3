import {
  createAuditRow,
  decisionClass,
  recordCode,
  renderAuditRow,
  renderRecordDetail,
  renderTimeline,
  timelineRecords,
  timelineSummary,
  verifyView
} from '../../components/auditRender';
import { makeRecord } from './auditFixtures';

describe('renderAuditRow', () => {
  it('shows time, user, event, action, dataset, label, decision, notebook', () => {
    const row = createAuditRow();
    const record = makeRecord(1234567, {
      event_type: 'export',
      action: 'export',
      decision: 'deny',
      notebook: 'work/q1.ipynb'
    });
    renderAuditRow(row, record, 'en-US');
    expect(row.classList.contains('jp-guard-audit-row')).toBe(true);
    expect(row.dataset.seq).toBe('1234567');
    const cells = Array.from(row.children).map(c => c.textContent);
    expect(cells[0]).toBe('1,234,567');
    expect(cells[1]).toContain('2026');
    expect(cells.slice(2)).toEqual([
      'alice',
      'export',
      'export',
      'sales',
      'confidential',
      'deny',
      'work/q1.ipynb'
    ]);
    const decision = row.querySelector('.jp-guard-audit-col-decision')!;
    expect(decision.classList.contains('jp-guard-decision-deny')).toBe(true);
    const label = row.querySelector<HTMLElement>('.jp-guard-audit-label')!;
    expect(label.dataset.guardLabel).toBe('confidential');
  });

  it('reuses a row for another record without creating elements', () => {
    const row = createAuditRow();
    renderAuditRow(row, makeRecord(1, { decision: 'deny' }));
    const children = Array.from(row.children);
    renderAuditRow(row, makeRecord(2, { decision: 'allow', label: null }));
    expect(Array.from(row.children)).toEqual(children);
    expect(row.dataset.seq).toBe('2');
    const decision = row.querySelector('.jp-guard-audit-col-decision')!;
    expect(decision.classList.contains('jp-guard-decision-deny')).toBe(false);
    expect(decision.classList.contains('jp-guard-decision-allow')).toBe(true);
    expect(row.querySelector<HTMLElement>('.jp-guard-audit-label')!.dataset.guardLabel).toBeUndefined();
  });

  it('colours unknown decisions neutrally', () => {
    expect(decisionClass('requested')).toBe('jp-guard-decision-requested');
    expect(decisionClass('weird')).toBe('jp-guard-decision-other');
    expect(decisionClass(null)).toBe('jp-guard-decision-none');
  });
});

describe('renderRecordDetail', () => {
  const cell = makeRecord(42, {
    event_type: 'cell_execution',
    action: 'execute',
    kernel_id: 'k-1',
    notebook: 'nb.ipynb',
    reasons: ['rule confidential-read allows researchers'],
    justification: 'Quarterly report for the board',
    details: {
      code: "df = pd.read_csv('data/sales.csv')\ndf.head()",
      execution_count: 3,
      datasets: [{ dataset: 'sales', label: 'confidential' }]
    }
  });

  it('shows every field, reasons, justification and details', () => {
    const node = renderRecordDetail(cell, 'en-US');
    expect(node.querySelector('.jp-guard-audit-field-seq')!.textContent).toBe('42');
    expect(node.querySelector('.jp-guard-audit-field-kernel_id')!.textContent).toBe('k-1');
    expect(node.querySelector('.jp-guard-audit-field-session_id')!.textContent).toBe('—');
    expect(node.querySelector('.jp-guard-audit-field-mac')!.textContent).toBe('m');
    expect(node.querySelector('.jp-guard-audit-fields')!.querySelectorAll('dd')).toHaveLength(18);
    expect(node.querySelector('.jp-guard-audit-reasons li')!.textContent).toBe(
      'rule confidential-read allows researchers'
    );
    expect(node.querySelector('.jp-guard-audit-justification')!.textContent).toBe(
      'Quarterly report for the board'
    );
    const details = JSON.parse(node.querySelector('.jp-guard-audit-details-json')!.textContent!);
    expect(details.execution_count).toBe(3);
    expect(details.code).toBeUndefined(); // shown in the code block instead
  });

  it('shows the cell code of a cell_execution in pre.jp-guard-audit-code', () => {
    const node = renderRecordDetail(cell);
    const code = node.querySelector('pre.jp-guard-audit-code');
    expect(code).not.toBeNull();
    expect(code!.textContent).toBe("df = pd.read_csv('data/sales.csv')\ndf.head()");
  });

  it('has no code block for other events, even with a details.code', () => {
    const other = makeRecord(5, { details: { code: 'x' } });
    expect(recordCode(other)).toBeNull();
    expect(renderRecordDetail(other).querySelector('pre.jp-guard-audit-code')).toBeNull();
  });

  it('escapes nothing into HTML', () => {
    const evil = makeRecord(6, { user: '<img src=x onerror=alert(1)>' });
    const node = renderRecordDetail(evil);
    expect(node.querySelector('img')).toBeNull();
    expect(node.querySelector('.jp-guard-audit-field-user')!.textContent).toBe(
      '<img src=x onerror=alert(1)>'
    );
  });
});

describe('timelineRecords', () => {
  const t = (minutes: number) => new Date(Date.UTC(2026, 2, 4, 12, minutes)).toISOString();
  const selected = makeRecord(10, { kernel_id: 'k-1', notebook: 'nb.ipynb', time: t(10), event_type: 'cell_execution' });
  const records = [
    makeRecord(12, { kernel_id: 'k-1', time: t(12), event_type: 'decision' }),
    makeRecord(11, { kernel_id: 'k-2', time: t(11), event_type: 'cell_execution' }),
    makeRecord(13, { kernel_id: null, time: t(13), event_type: 'export', notebook: 'nb.ipynb' }),
    makeRecord(9, { kernel_id: 'k-1', time: t(9), event_type: 'cell_execution' }),
    makeRecord(14, { kernel_id: null, time: t(14), event_type: 'download', notebook: 'nb.ipynb' }),
    makeRecord(15, { kernel_id: null, time: t(15), event_type: 'purpose' })
  ];

  it("keeps the selected kernel's records and the notebook's exports, in time order", () => {
    const items = timelineRecords(records, selected);
    expect(items.map(r => r.seq)).toEqual([9, 10, 12, 13, 14]);
  });

  it('keeps every record when the selected record has no kernel', () => {
    const exportRecord = { ...records[2] };
    const items = timelineRecords(records, exportRecord);
    expect(items.map(r => r.seq)).toEqual([9, 11, 12, 13, 14, 15]);
  });

  it('renders clickable items with data-seq, the current one marked, and truncation', () => {
    const container = document.createElement('div');
    renderTimeline(container, timelineRecords(records, selected), {
      selectedSeq: 10,
      truncated: true,
      limit: 1000,
      kernelId: 'k-1',
      locale: 'en-US'
    });
    const items = Array.from(container.querySelectorAll<HTMLElement>('.jp-guard-timeline-item'));
    expect(items.map(i => i.dataset.seq)).toEqual(['9', '10', '12', '13', '14']);
    expect(items[1].classList.contains('jp-mod-current')).toBe(true);
    expect(container.querySelector('.jp-guard-timeline-truncated')!.textContent).toContain('1,000');
  });

  it('summarises a cell by its execution count, reads and first line of code', () => {
    const summary = timelineSummary(
      makeRecord(1, {
        event_type: 'cell_execution',
        decision: 'deny',
        details: {
          execution_count: 4,
          datasets: [{ dataset: 'patients', label: 'restricted' }],
          code: '\nimport pandas as pd\nx = 1'
        }
      })
    );
    expect(summary).toBe('cell_execution [4] reads patients (restricted) — import pandas as pd → deny');
  });
});

describe('verifyView', () => {
  it('is pending without a result', () => {
    expect(verifyView(null).state).toBe('pending');
  });

  it('says verified with the count', () => {
    expect(
      verifyView({ ok: true, checked: 1_000_000, first_bad_seq: null, problem: null, head_seq: 1_000_000 }, null, 'en-US')
    ).toEqual({ state: 'ok', text: 'Chain verified: 1,000,000 records' });
  });

  it('says where the chain was tampered with', () => {
    expect(
      verifyView({ ok: false, checked: 5000, first_bad_seq: 4321, problem: 'mac mismatch', head_seq: 9000 }, null, 'en-US')
    ).toEqual({ state: 'tampered', text: 'TAMPERED at record 4,321: mac mismatch' });
  });

  it('says why verification failed', () => {
    expect(verifyView(null, new Error('503 Service Unavailable'))).toEqual({
      state: 'error',
      text: 'Verification failed: 503 Service Unavailable'
    });
  });
});
