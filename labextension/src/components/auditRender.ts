/**
 * Pure rendering of the audit viewer: list rows, the detail of one record,
 * the per-session timeline and the verification badge. No requests.
 */
import { formatCount, formatTime } from './auditQuery';
import { errorReason } from './statusWidget';
import { IAuditRecord, IAuditVerify } from '../tokens';
import { el } from './dom';

/** Height of a list row in px (CSS .jp-guard-audit-row agrees). */
export const AUDIT_ROW_HEIGHT = 28;

/** Decisions with a colour of their own; others get jp-guard-decision-other. */
const KNOWN_DECISIONS = new Set([
  'allow',
  'redact',
  'justify',
  'deny',
  'requested',
  'error',
  'unguarded'
]);

/** The colour class of a decision. */
export function decisionClass(decision: string | null | undefined): string {
  if (!decision) {
    return 'jp-guard-decision-none';
  }
  return KNOWN_DECISIONS.has(decision)
    ? `jp-guard-decision-${decision}`
    : 'jp-guard-decision-other';
}

/** The list columns, in order: [class suffix, header text]. */
export const ROW_COLUMNS: readonly [string, string][] = [
  ['seq', 'Seq'],
  ['time', 'Time'],
  ['user', 'User'],
  ['event', 'Event'],
  ['action', 'Action'],
  ['dataset', 'Dataset'],
  ['label', 'Label'],
  ['decision', 'Decision'],
  ['notebook', 'Notebook']
];

/** The header row above the list. */
export function createHeaderRow(): HTMLElement {
  const header = document.createElement('div');
  header.className = 'jp-guard-audit-header';
  header.setAttribute('aria-hidden', 'true');
  for (const [key, text] of ROW_COLUMNS) {
    const cell = document.createElement('span');
    cell.className = `jp-guard-audit-col jp-guard-audit-col-${key}`;
    cell.textContent = text;
    header.appendChild(cell);
  }
  return header;
}

/** An empty list row with one span per column. */
export function createAuditRow(): HTMLElement {
  const row = document.createElement('div');
  row.className = 'jp-guard-audit-row';
  for (const [key] of ROW_COLUMNS) {
    const cell = document.createElement('span');
    cell.className = `jp-guard-audit-col jp-guard-audit-col-${key}`;
    row.appendChild(cell);
  }
  const label = row.children[6] as HTMLElement;
  label.classList.add('jp-guard-audit-label');
  return row;
}

/**
 * Fill a (possibly recycled) row with a record. Only textContent and a few
 * attributes change: no element is created.
 */
export function renderAuditRow(
  row: HTMLElement,
  record: IAuditRecord | undefined,
  locale?: string
): void {
  const cells = row.children as HTMLCollectionOf<HTMLElement>;
  if (!record) {
    delete row.dataset.seq;
    for (let i = 0; i < cells.length; i++) {
      cells[i].textContent = '';
    }
    return;
  }
  if (row.dataset.seq === String(record.seq)) {
    return;
  }
  row.dataset.seq = String(record.seq);
  cells[0].textContent = formatCount(record.seq, locale);
  cells[1].textContent = formatTime(record.time, locale);
  cells[1].title = record.time;
  cells[2].textContent = record.user ?? '';
  cells[3].textContent = record.event_type;
  cells[4].textContent = record.action ?? '';
  cells[5].textContent = record.dataset ?? '';
  cells[5].title = record.target ?? record.dataset ?? '';
  cells[6].textContent = record.label ?? '';
  if (record.label) {
    cells[6].dataset.guardLabel = record.label;
  } else {
    delete cells[6].dataset.guardLabel;
  }
  cells[7].textContent = record.decision ?? '';
  cells[7].className = `jp-guard-audit-col jp-guard-audit-col-decision ${decisionClass(record.decision)}`;
  cells[8].textContent = record.notebook ?? '';
  cells[8].title = record.notebook ?? '';
}

/** The cell's code of a cell_execution record (secrets masked by the server), or null. */
export function recordCode(record: IAuditRecord): string | null {
  if (record.event_type !== 'cell_execution') {
    return null;
  }
  const code = record.details?.code;
  return typeof code === 'string' ? code : null;
}

/** The fields shown in the detail, in order: [field, label]. */
const DETAIL_FIELDS: readonly [keyof IAuditRecord, string][] = [
  ['seq', 'Seq'],
  ['time', 'Time'],
  ['event_type', 'Event type'],
  ['user', 'User'],
  ['action', 'Action'],
  ['target', 'Target'],
  ['dataset', 'Dataset'],
  ['label', 'Label'],
  ['decision', 'Decision'],
  ['purpose', 'Purpose'],
  ['justification', 'Justification'],
  ['notebook', 'Notebook'],
  ['kernel_id', 'Kernel'],
  ['session_id', 'Session'],
  ['cell_id', 'Cell'],
  ['msg_id', 'Message'],
  ['prev_mac', 'Previous MAC'],
  ['mac', 'MAC']
];


/** The detail of one record: every field, reasons, justification, code, details. */
export function renderRecordDetail(record: IAuditRecord, locale?: string): HTMLElement {
  const root = el('div', 'jp-guard-audit-detail-record');
  root.dataset.seq = String(record.seq);
  root.appendChild(
    el('h3', 'jp-guard-audit-detail-title', `Record ${formatCount(record.seq, locale)} · ${record.event_type}`)
  );

  const fields = el('dl', 'jp-guard-audit-fields');
  for (const [key, label] of DETAIL_FIELDS) {
    const raw = record[key];
    let text: string;
    if (raw === null || raw === undefined || raw === '') {
      text = '—';
    } else if (key === 'seq') {
      text = formatCount(record.seq, locale);
    } else if (key === 'time') {
      text = `${formatTime(record.time, locale)} (${record.time})`;
    } else {
      text = String(raw);
    }
    const dt = el('dt', undefined, label);
    const dd = el('dd', `jp-guard-audit-field-${key}`, text);
    dd.dataset.field = key;
    if (key === 'decision') {
      dd.classList.add(decisionClass(record.decision));
    }
    fields.append(dt, dd);
  }
  root.appendChild(fields);

  root.appendChild(el('h4', undefined, 'Reasons'));
  const reasons = Array.isArray(record.reasons) ? record.reasons : [];
  if (reasons.length > 0) {
    const list = el('ul', 'jp-guard-audit-reasons');
    for (const reason of reasons) {
      list.appendChild(el('li', undefined, reason));
    }
    root.appendChild(list);
  } else {
    root.appendChild(el('p', 'jp-guard-audit-reasons jp-guard-audit-none', 'No reasons recorded.'));
  }

  if (record.justification) {
    root.appendChild(el('h4', undefined, 'Justification'));
    root.appendChild(el('blockquote', 'jp-guard-audit-justification', record.justification));
  }

  const code = recordCode(record);
  const details: { [key: string]: unknown } = { ...(record.details ?? {}) };
  if (code !== null) {
    root.appendChild(el('h4', undefined, 'Cell code (secrets masked)'));
    root.appendChild(el('pre', 'jp-guard-audit-code', code));
    delete details.code; // shown above
  }

  root.appendChild(el('h4', undefined, 'Details'));
  root.appendChild(el('pre', 'jp-guard-audit-details-json', JSON.stringify(details, null, 2)));
  return root;
}

/** Event types shown in a session timeline whatever their kernel. */
const NOTEBOOK_EVENTS = new Set(['export', 'download']);

/**
 * The records of a session timeline: those of the selected record's kernel
 * (cells, reads, decisions) plus the notebook's exports and downloads, in
 * time order. Without a kernel id every record of the window is kept.
 */
export function timelineRecords(
  records: readonly IAuditRecord[],
  selected: IAuditRecord
): IAuditRecord[] {
  const kernel = selected.kernel_id;
  const kept = records.filter(
    r =>
      r.seq === selected.seq ||
      !kernel ||
      r.kernel_id === kernel ||
      NOTEBOOK_EVENTS.has(r.event_type)
  );
  if (!kept.some(r => r.seq === selected.seq)) {
    kept.push(selected);
  }
  return kept.sort((a, b) => {
    const ta = Date.parse(a.time);
    const tb = Date.parse(b.time);
    if (ta !== tb && !Number.isNaN(ta) && !Number.isNaN(tb)) {
      return ta - tb;
    }
    return a.seq - b.seq;
  });
}

/** One line of a timeline item, e.g. `cell_execution [3] reads sales (confidential) allow`. */
export function timelineSummary(record: IAuditRecord): string {
  const parts: string[] = [record.event_type];
  if (record.event_type === 'cell_execution') {
    const count = record.details?.execution_count;
    if (typeof count === 'number') {
      parts.push(`[${count}]`);
    }
    const reads = record.details?.datasets;
    if (Array.isArray(reads) && reads.length > 0) {
      const names = reads
        .map(r => {
          const d = r as { dataset?: unknown; label?: unknown };
          if (typeof d?.dataset !== 'string') {
            return null;
          }
          return typeof d.label === 'string' ? `${d.dataset} (${d.label})` : d.dataset;
        })
        .filter((x): x is string => x !== null);
      if (names.length > 0) {
        parts.push(`reads ${names.join(', ')}`);
      }
    }
    const code = recordCode(record);
    if (code) {
      const line = code.split('\n').find(l => l.trim()) ?? '';
      if (line) {
        parts.push(`— ${line.trim().slice(0, 80)}`);
      }
    }
  } else {
    if (record.action && record.action !== record.event_type) {
      parts.push(record.action);
    }
    if (record.dataset) {
      parts.push(record.label ? `${record.dataset} (${record.label})` : record.dataset);
    } else if (record.target) {
      parts.push(record.target);
    }
    if (typeof record.details?.format === 'string') {
      parts.push(`as ${record.details.format}`);
    }
  }
  if (record.decision) {
    parts.push(`→ ${record.decision}`);
  }
  return parts.join(' ');
}

/** Render timeline items (`.jp-guard-timeline-item[data-seq]`) into `container`. */
export function renderTimeline(
  container: HTMLElement,
  items: readonly IAuditRecord[],
  options: {
    selectedSeq: number;
    truncated: boolean;
    limit: number;
    kernelId: string | null;
    locale?: string;
  }
): void {
  container.textContent = '';
  container.dataset.state = 'ready';
  const heading = el(
    'h4',
    'jp-guard-timeline-title',
    options.kernelId
      ? `Session timeline (kernel ${options.kernelId.slice(0, 8)}, ±12 h)`
      : 'Notebook timeline (±12 h)'
  );
  container.appendChild(heading);
  if (options.truncated) {
    container.appendChild(
      el(
        'p',
        'jp-guard-timeline-truncated',
        `Window truncated: only the first ${formatCount(options.limit, options.locale)} records of these 24 hours are shown.`
      )
    );
  }
  const list = el('ol', 'jp-guard-timeline-list');
  for (const record of items) {
    const item = el('li', 'jp-guard-timeline-item');
    item.dataset.seq = String(record.seq);
    item.tabIndex = 0;
    item.setAttribute('role', 'button');
    if (record.seq === options.selectedSeq) {
      item.classList.add('jp-mod-current');
      item.setAttribute('aria-current', 'true');
    }
    if (!options.kernelId && record.kernel_id) {
      item.dataset.kernel = record.kernel_id;
    }
    const time = el('span', 'jp-guard-timeline-time', formatTime(record.time, options.locale));
    const summary = el('span', 'jp-guard-timeline-summary', timelineSummary(record));
    const decision = decisionClass(record.decision);
    item.classList.add(decision);
    item.append(time, summary);
    list.appendChild(item);
  }
  container.appendChild(list);
}

/** The badge's state and text. */
export interface IVerifyView {
  state: 'pending' | 'ok' | 'tampered' | 'error';
  text: string;
}

/** The verification badge for a result, an error, or neither (pending). */
export function verifyView(
  result: IAuditVerify | null,
  error?: unknown,
  locale?: string
): IVerifyView {
  if (error !== undefined && error !== null) {
    return { state: 'error', text: `Verification failed: ${errorReason(error)}` };
  }
  if (!result) {
    return { state: 'pending', text: 'Verifying the hash chain…' };
  }
  if (result.ok) {
    const n = result.checked;
    return {
      state: 'ok',
      text: `Chain verified: ${formatCount(n, locale)} record${n === 1 ? '' : 's'}`
    };
  }
  const where =
    result.first_bad_seq !== null && result.first_bad_seq !== undefined
      ? ` at record ${formatCount(result.first_bad_seq, locale)}`
      : '';
  return {
    state: 'tampered',
    text: `TAMPERED${where}: ${result.problem ?? 'the chain does not verify'}`
  };
}
