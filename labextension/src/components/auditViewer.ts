/**
 * The steward's audit viewer: filter bar, verification badge, export links,
 * a virtualised list over the paged model, and a detail pane with the
 * record's session timeline.
 */
import { Panel, Widget } from '@lumino/widgets';

import { AuditPagedModel, AuditPageFetcher } from './auditModel';
import {
  auditQueryString,
  cleanFilters,
  DECISIONS,
  EVENT_TYPES,
  IAuditQueryParams,
  localInputToIso,
  timeWindow
} from './auditQuery';
import {
  AUDIT_ROW_HEIGHT,
  createAuditRow,
  createHeaderRow,
  renderAuditRow,
  renderRecordDetail,
  renderTimeline,
  timelineRecords,
  verifyView
} from './auditRender';
import { errorReason } from './statusWidget';
import { AUDIT_VIEWER_ID, IAuditFilters, IAuditRecord, IAuditVerify } from '../tokens';
import { VirtualList } from './virtualList';

/** performance.mark names the lead's Chromium benchmark measures between. */
export const MARK_OPEN = 'jupyter-guard:audit-open';
export const MARK_FIRST_PAGE = 'jupyter-guard:audit-first-page';

/** Records fetched for a session timeline. */
export const TIMELINE_LIMIT = 1000;

/** What the viewer needs from the server. */
export interface IAuditViewerApi {
  /** `GET audit?<params>`. */
  fetchPage: AuditPageFetcher;
  /** `GET audit/verify`. */
  verify: () => Promise<IAuditVerify>;
  /** Label names of the catalog, least sensitive first (for the label filter). */
  labels?: () => Promise<string[]>;
  /** The `GET audit/export` URL of a format and filters. */
  exportUrl: (format: 'csv' | 'jsonl', filters: IAuditFilters) => string;
}

/** `performance.mark`, where the page has it. */
export function mark(name: string): void {
  if (typeof performance !== 'undefined' && typeof performance.mark === 'function') {
    try {
      performance.mark(name);
    } catch {
      // marks are for measurement only
    }
  }
}

/** Run after the browser painted what is in the DOM now (two frames, then a task). */
function afterPaint(callback: () => void): void {
  const frame =
    typeof requestAnimationFrame === 'function'
      ? requestAnimationFrame
      : (cb: () => void) => setTimeout(cb, 16);
  frame(() => setTimeout(callback, 0));
}

type FilterField = HTMLInputElement | HTMLSelectElement;

export class AuditViewer extends Panel {
  constructor(options: AuditViewer.IOptions) {
    super();
    this.id = AUDIT_VIEWER_ID;
    this.addClass('jp-guard-audit-viewer');
    this.title.label = 'Audit log';
    this.title.caption = 'jupyter_guard audit log (stewards)';
    this._api = options.api;
    this._locale = options.locale;
    this._timelineDelay = options.timelineDelay ?? 150;
    this._afterPaint = options.afterPaint ?? afterPaint;

    this.model = new AuditPagedModel({
      fetchPage: options.api.fetchPage,
      pageSize: options.pageSize
    });

    // Toolbar: filters, verification, exports, errors.
    const toolbar = new Widget();
    toolbar.addClass('jp-guard-audit-toolbar');
    this._filterBar = this._createFilterBar();
    toolbar.node.appendChild(this._filterBar);

    const actions = document.createElement('div');
    actions.className = 'jp-guard-audit-actions';
    this._verifyBadge = document.createElement('span');
    this._verifyBadge.className = 'jp-guard-audit-verify';
    this._verifyBadge.dataset.state = 'pending';
    this._verifyBadge.setAttribute('role', 'status');
    this._verifyBadge.textContent = 'Chain verification waits for the first page';
    this._verifyButton = document.createElement('button');
    this._verifyButton.type = 'button';
    this._verifyButton.className = 'jp-mod-styled jp-guard-audit-verify-rerun';
    this._verifyButton.textContent = 'Verify again';
    this._verifyButton.title = 'Verify the hash chain of the whole log again';
    this._verifyButton.addEventListener('click', () => {
      void this.verify();
    });
    actions.append(this._verifyBadge, this._verifyButton);
    for (const [format, text] of [
      ['csv', 'Export CSV'],
      ['jsonl', 'Export JSON Lines']
    ] as const) {
      const link = document.createElement('a');
      link.className = 'jp-guard-audit-export';
      link.dataset.format = format;
      link.textContent = text;
      link.title = `Download the records matching the applied filters as ${format === 'csv' ? 'CSV' : 'JSON Lines'}`;
      link.setAttribute('download', '');
      this._exportLinks.push(link);
      actions.appendChild(link);
    }
    toolbar.node.appendChild(actions);

    this._error = document.createElement('div');
    this._error.className = 'jp-guard-audit-error';
    this._error.setAttribute('role', 'alert');
    this._error.hidden = true;
    toolbar.node.appendChild(this._error);
    this.addWidget(toolbar);

    // Body: list (with header) and detail.
    const body = new Panel();
    body.addClass('jp-guard-audit-body');
    const listPanel = new Panel();
    listPanel.addClass('jp-guard-audit-listpane');
    const header = new Widget({ node: createHeaderRow() });
    listPanel.addWidget(header);

    const pageSize = this.model.pageSize;
    this.list = new VirtualList({
      rowHeight: AUDIT_ROW_HEIGHT,
      overscan: 10,
      nearEndRows: 2 * pageSize,
      label: 'Audit records',
      createRow: createAuditRow,
      renderRow: (row, index) => {
        renderAuditRow(row, this.model.records[index], this._locale);
      },
      onNearEnd: () => {
        void this.model.loadMore();
      }
    });
    this.list.addClass('jp-guard-audit-list');
    this.list.footer.classList.add('jp-guard-audit-footer');
    this.list.footer.addEventListener('click', this._onFooterClick);
    this.list.selectionChanged.connect(this._onSelection, this);
    listPanel.addWidget(this.list);
    body.addWidget(listPanel);

    this._detail = new Widget();
    this._detail.addClass('jp-guard-audit-detail');
    this._detailRecord = document.createElement('div');
    this._detailRecord.className = 'jp-guard-audit-detail-empty';
    this._detailRecord.textContent = 'Select a record to see its details.';
    this._timeline = document.createElement('div');
    this._timeline.className = 'jp-guard-audit-timeline';
    this._timeline.hidden = true;
    this._timeline.addEventListener('click', this._onTimelineClick);
    this._timeline.addEventListener('keydown', this._onTimelineKey);
    this._detail.node.append(this._detailRecord, this._timeline);
    body.addWidget(this._detail);
    this.addWidget(body);

    this.model.changed.connect(this._onModelChanged, this);
    this.model.firstPageLoaded.connect(this._onFirstPage, this);
    this._updateExportLinks();
    this._renderFooter();
  }

  /** The paged model. */
  readonly model: AuditPagedModel;
  /** The virtualised list. */
  readonly list: VirtualList;

  /** The record in the detail pane, or null. */
  get selected(): IAuditRecord | null {
    return this._selected;
  }

  /** Records per request (the setting auditPageSize). */
  set pageSize(value: number) {
    this.model.pageSize = value;
    this.list.nearEndRows = 2 * this.model.pageSize;
  }

  /**
   * Load the first page (unfiltered). The label choices and the chain
   * verification follow once it is painted.
   */
  start(): Promise<void> {
    return this.apply();
  }

  /** The filters as the filter bar shows them now (not yet applied). */
  readFilters(): IAuditFilters {
    const filters: IAuditFilters = {};
    for (const field of this._fields()) {
      const name = field.name as keyof IAuditFilters;
      if (name === 'since' || name === 'until') {
        filters[name] = localInputToIso(field.value);
      } else {
        filters[name] = field.value;
      }
    }
    return cleanFilters(filters);
  }

  /** Apply the filter bar: reset the list and load the first page. */
  apply(): Promise<void> {
    const filters = this.readFilters();
    this._clearSelection();
    this.list.node.scrollTop = 0;
    this.list.resetNearEnd();
    const loaded = this.model.setFilters(filters);
    this._updateExportLinks();
    return loaded;
  }

  /** Empty every filter and apply. */
  clear(): Promise<void> {
    for (const field of this._fields()) {
      field.value = field instanceof HTMLSelectElement ? 'any' : '';
    }
    return this.apply();
  }

  /** Verify the hash chain of the whole log and show the result in the badge. */
  async verify(): Promise<void> {
    const run = ++this._verifyRun;
    this._verifyStarted = true;
    this._setVerify(verifyView(null));
    this._verifyButton.disabled = true;
    let result: IAuditVerify | null = null;
    let failure: unknown = null;
    try {
      result = await this._api.verify();
    } catch (error) {
      failure = error ?? new Error('unknown error');
    }
    if (this.isDisposed || run !== this._verifyRun) {
      return;
    }
    this._verifyButton.disabled = false;
    this._setVerify(verifyView(result, failure, this._locale));
  }

  /**
   * Show a record: select it in the list when loaded there, else show its
   * detail alone (e.g. a timeline record outside the loaded pages).
   */
  showRecord(record: IAuditRecord): void {
    const index = this.model.indexOf(record.seq);
    if (index >= 0) {
      if (this.list.selectedIndex === index) {
        this._showDetail(record);
      } else {
        this.list.select(index);
      }
    } else {
      this.list.select(-1, { scroll: false });
      this._showDetail(record);
    }
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.model.dispose();
    this._timelineController?.abort();
    if (this._timelineTimer !== null) {
      clearTimeout(this._timelineTimer);
    }
    super.dispose();
  }

  // -- filters -------------------------------------------------------------------------------

  private _createFilterBar(): HTMLElement {
    const bar = document.createElement('div');
    bar.className = 'jp-guard-audit-filters';
    bar.setAttribute('role', 'search');
    const text = (name: string, label: string, placeholder: string) => {
      const input = document.createElement('input');
      input.type = 'text';
      input.name = name;
      input.placeholder = placeholder;
      input.className = 'jp-mod-styled';
      return this._wrap(label, input);
    };
    const select = (name: string, label: string, values: readonly string[]) => {
      const node = document.createElement('select');
      node.name = name;
      node.className = 'jp-mod-styled';
      for (const value of ['any', ...values]) {
        const option = document.createElement('option');
        option.value = value;
        option.textContent = value;
        node.appendChild(option);
      }
      return this._wrap(label, node);
    };
    const time = (name: string, label: string) => {
      const input = document.createElement('input');
      input.type = 'datetime-local';
      input.name = name;
      input.className = 'jp-mod-styled';
      return this._wrap(label, input);
    };
    bar.append(
      text('user', 'User', 'user name'),
      text('dataset', 'Dataset', 'dataset'),
      text('notebook', 'Notebook', 'path/to/notebook.ipynb'),
      text('label', 'Label', 'label'),
      select('decision', 'Decision', DECISIONS),
      select('event_type', 'Event', EVENT_TYPES),
      time('since', 'Since'),
      time('until', 'Until')
    );
    const apply = document.createElement('button');
    apply.type = 'button';
    apply.className = 'jp-mod-styled jp-mod-accept jp-guard-audit-apply';
    apply.textContent = 'Apply';
    apply.addEventListener('click', () => {
      void this.apply();
    });
    const clear = document.createElement('button');
    clear.type = 'button';
    clear.className = 'jp-mod-styled jp-guard-audit-clear';
    clear.textContent = 'Clear';
    clear.addEventListener('click', () => {
      void this.clear();
    });
    bar.append(apply, clear);
    bar.addEventListener('keydown', event => {
      const target = event.target as HTMLElement;
      if (event.key === 'Enter' && (target instanceof HTMLInputElement || target instanceof HTMLSelectElement)) {
        event.preventDefault();
        void this.apply();
      }
    });
    return bar;
  }

  private _wrap(label: string, field: FilterField): HTMLElement {
    const wrapper = document.createElement('label');
    wrapper.className = `jp-guard-audit-filter jp-guard-audit-filter-${field.name}`;
    const caption = document.createElement('span');
    caption.textContent = label;
    wrapper.append(caption, field);
    return wrapper;
  }

  private _fields(): FilterField[] {
    return Array.from(
      this._filterBar.querySelectorAll<FilterField>('input[name], select[name]')
    );
  }

  /** Replace the label text input by a select of the catalog's labels. */
  private async _loadLabels(): Promise<void> {
    if (!this._api.labels) {
      return;
    }
    let labels: string[];
    try {
      labels = await this._api.labels();
    } catch {
      return; // the text input stays
    }
    if (this.isDisposed || !Array.isArray(labels) || labels.length === 0) {
      return;
    }
    const input = this._filterBar.querySelector<FilterField>('[name="label"]');
    if (!input || input instanceof HTMLSelectElement) {
      return;
    }
    const select = document.createElement('select');
    select.name = 'label';
    select.className = 'jp-mod-styled';
    const current = input.value.trim();
    const values = ['any', ...labels];
    if (current && !labels.includes(current)) {
      values.push(current);
    }
    for (const value of values) {
      const option = document.createElement('option');
      option.value = value;
      option.textContent = value;
      select.appendChild(option);
    }
    select.value = current || 'any';
    input.replaceWith(select);
  }

  private _updateExportLinks(): void {
    const filters = this.model.filters;
    for (const link of this._exportLinks) {
      link.href = this._api.exportUrl(link.dataset.format as 'csv' | 'jsonl', filters);
    }
  }

  // -- list ----------------------------------------------------------------------------------

  private _onModelChanged(): void {
    const count = this.model.records.length;
    if (count === 0) {
      this.list.count = 0;
      this.list.invalidate();
    } else {
      this.list.count = count;
    }
    this._renderFooter();
    const error = this.model.error;
    this._error.hidden = error === null;
    this._error.textContent = error ?? '';
  }

  private _onFirstPage(): void {
    if (this.model.error !== null) {
      return;
    }
    // The rows are in the DOM: _onModelChanged rendered them synchronously.
    if (!this._firstPageMarked) {
      this._firstPageMarked = true;
      mark(MARK_FIRST_PAGE);
    }
    if (!this._verifyStarted) {
      this._verifyStarted = true;
      // After the first page is painted, never before: verification can take
      // seconds on a large log, and the catalog request runs policy for
      // every dataset; neither may delay the first page.
      this._afterPaint(() => {
        if (!this.isDisposed) {
          void this.verify();
          void this._loadLabels();
        }
      });
    }
  }

  private _renderFooter(): void {
    const footer = this.list.footer;
    const state = this.model.state;
    const empty = this.model.records.length === 0;
    footer.textContent = '';
    footer.classList.remove('jp-guard-audit-empty');
    let text: string;
    let footerState: string = state;
    switch (state) {
      case 'loading':
        text = 'Loading…';
        break;
      case 'end':
        if (empty) {
          text = 'No records match these filters';
          footerState = 'empty';
          footer.classList.add('jp-guard-audit-empty');
        } else {
          text = 'End of log';
        }
        break;
      case 'error':
        text = `Could not load records: ${this.model.error ?? 'unknown error'}`;
        break;
      default:
        text = '';
    }
    footer.dataset.state = footerState;
    const span = document.createElement('span');
    span.className = 'jp-guard-audit-footer-text';
    span.textContent = text;
    footer.appendChild(span);
    if (state === 'error') {
      const retry = document.createElement('button');
      retry.type = 'button';
      retry.className = 'jp-mod-styled jp-guard-audit-retry';
      retry.textContent = 'Retry';
      footer.appendChild(retry);
    }
  }

  private _onFooterClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement;
    if (target.classList.contains('jp-guard-audit-retry')) {
      this.list.resetNearEnd();
      void this.model.retry();
    }
  };

  // -- detail and timeline -------------------------------------------------------------------

  private _onSelection(_: VirtualList, index: number): void {
    if (index < 0) {
      return;
    }
    const record = this.model.records[index];
    if (record) {
      this._showDetail(record);
    }
  }

  private _clearSelection(): void {
    this.list.select(-1, { scroll: false });
    this._selected = null;
    const empty = document.createElement('div');
    empty.className = 'jp-guard-audit-detail-empty';
    empty.textContent = 'Select a record to see its details.';
    this._detailRecord.replaceWith(empty);
    this._detailRecord = empty;
    this._resetTimeline();
  }

  private _showDetail(record: IAuditRecord): void {
    this._selected = record;
    const detail = renderRecordDetail(record, this._locale);
    this._detailRecord.replaceWith(detail);
    this._detailRecord = detail;

    if (!record.notebook) {
      this._resetTimeline();
      return;
    }
    // A record of the timeline on show keeps the timeline; move the highlight.
    if (this._timelineSeqs.has(record.seq) && this._timelineFor?.notebook === record.notebook) {
      this._highlightTimeline(record.seq);
      return;
    }
    this._loadTimeline(record);
  }

  private _resetTimeline(): void {
    this._timelineController?.abort();
    this._timelineController = null;
    if (this._timelineTimer !== null) {
      clearTimeout(this._timelineTimer);
      this._timelineTimer = null;
    }
    this._timelineFor = null;
    this._timelineRecords.clear();
    this._timelineSeqs.clear();
    this._timeline.hidden = true;
    this._timeline.textContent = '';
  }

  private _loadTimeline(record: IAuditRecord): void {
    this._resetTimeline();
    this._timelineFor = record;
    this._timeline.hidden = false;
    this._timeline.dataset.state = 'loading';
    this._timeline.textContent = 'Loading the session timeline…';
    const span = timeWindow(record.time, 12);
    const params: IAuditQueryParams = {
      notebook: record.notebook ?? undefined,
      user: record.user ?? undefined,
      order: 'asc',
      limit: TIMELINE_LIMIT
    };
    if (span) {
      params.since = span.since;
      params.until = span.until;
    }
    const fetch = () => {
      this._timelineTimer = null;
      const controller =
        typeof AbortController !== 'undefined' ? new AbortController() : null;
      this._timelineController = controller;
      this._api.fetchPage(params, controller?.signal).then(
        page => {
          if (this.isDisposed || this._timelineFor !== record) {
            return;
          }
          this._timelineController = null;
          const items = timelineRecords(page.records ?? [], record);
          for (const item of items) {
            this._timelineRecords.set(item.seq, item);
            this._timelineSeqs.add(item.seq);
          }
          renderTimeline(this._timeline, items, {
            selectedSeq: record.seq,
            truncated: page.next !== null && page.next !== undefined,
            limit: TIMELINE_LIMIT,
            kernelId: record.kernel_id,
            locale: this._locale
          });
        },
        error => {
          if (this.isDisposed || this._timelineFor !== record) {
            return;
          }
          this._timelineController = null;
          this._timeline.dataset.state = 'error';
          this._timeline.textContent = `Could not load the session timeline: ${errorReason(error)}`;
        }
      );
    };
    if (this._timelineDelay > 0) {
      // Debounced: holding the down arrow must not send a request per row.
      this._timelineTimer = setTimeout(fetch, this._timelineDelay);
    } else {
      fetch();
    }
  }

  private _highlightTimeline(seq: number): void {
    this._timeline.querySelectorAll('.jp-guard-timeline-item').forEach(node => {
      const item = node as HTMLElement;
      const current = item.dataset.seq === String(seq);
      item.classList.toggle('jp-mod-current', current);
      if (current) {
        item.setAttribute('aria-current', 'true');
      } else {
        item.removeAttribute('aria-current');
      }
    });
  }

  private _timelineItem(event: Event): IAuditRecord | null {
    const target = event.target as HTMLElement;
    const item = target.closest?.('.jp-guard-timeline-item') as HTMLElement | null;
    if (!item) {
      return null;
    }
    return this._timelineRecords.get(Number(item.dataset.seq)) ?? null;
  }

  private _onTimelineClick = (event: MouseEvent): void => {
    const record = this._timelineItem(event);
    if (record) {
      this.showRecord(record);
    }
  };

  private _onTimelineKey = (event: KeyboardEvent): void => {
    if (event.key !== 'Enter' && event.key !== ' ') {
      return;
    }
    const record = this._timelineItem(event);
    if (record) {
      event.preventDefault();
      this.showRecord(record);
    }
  };

  private _setVerify(view: { state: string; text: string }): void {
    this._verifyBadge.dataset.state = view.state;
    this._verifyBadge.textContent = view.text;
  }

  private _api: IAuditViewerApi;
  private _locale: string | undefined;
  private _timelineDelay: number;
  private _afterPaint: (callback: () => void) => void;
  private _filterBar: HTMLElement;
  private _verifyBadge: HTMLSpanElement;
  private _verifyButton: HTMLButtonElement;
  private _exportLinks: HTMLAnchorElement[] = [];
  private _error: HTMLDivElement;
  private _detail: Widget;
  private _detailRecord: HTMLElement;
  private _timeline: HTMLDivElement;
  private _timelineFor: IAuditRecord | null = null;
  private _timelineRecords = new Map<number, IAuditRecord>();
  private _timelineSeqs = new Set<number>();
  private _timelineController: AbortController | null = null;
  private _timelineTimer: ReturnType<typeof setTimeout> | null = null;
  private _selected: IAuditRecord | null = null;
  private _firstPageMarked = false;
  private _verifyStarted = false;
  private _verifyRun = 0;
}

export namespace AuditViewer {
  export interface IOptions {
    api: IAuditViewerApi;
    /** Records per request (setting auditPageSize, default 200). */
    pageSize: number;
    /** Locale for times and numbers (default: the user's). */
    locale?: string;
    /** Debounce (ms) of the timeline request after a selection (default 150). */
    timelineDelay?: number;
    /** How to wait for the first page to be painted before verifying (tests). */
    afterPaint?: (callback: () => void) => void;
  }
}

/** The `GET audit` endpoint (under /jupyter-guard/api/) of query parameters. */
export function auditEndpoint(params: IAuditQueryParams): string {
  const query = auditQueryString(params);
  return query ? `audit?${query}` : 'audit';
}
