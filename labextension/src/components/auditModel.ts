/**
 * The audit viewer's paged model: keyset paging over `GET audit` (`after=`
 * the previous page's `next`), at most one request in flight, filters that
 * reset the list, and an end of log when `next` is null.
 */
import { ISignal, Signal } from '@lumino/signaling';

import { cleanFilters, IAuditQueryParams } from './auditQuery';
import { errorReason } from './statusWidget';
import { IAuditFilters, IAuditPage, IAuditRecord } from '../tokens';

/** Fetches one page; `signal` aborts a request made stale by new filters. */
export type AuditPageFetcher = (
  params: IAuditQueryParams,
  signal?: AbortSignal
) => Promise<IAuditPage>;

/** idle: more can be loaded; loading: a request is in flight; end: next was null. */
export type AuditModelState = 'idle' | 'loading' | 'error' | 'end';

export class AuditPagedModel {
  constructor(options: AuditPagedModel.IOptions) {
    this._fetch = options.fetchPage;
    this.pageSize = options.pageSize;
  }

  /** Emits after every change of records, state or error. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Emits once per filter set, after its first page (or its error). */
  get firstPageLoaded(): ISignal<this, void> {
    return this._firstPageLoaded;
  }

  /** Records loaded so far, newest first. */
  get records(): readonly IAuditRecord[] {
    return this._records;
  }

  /** The applied filters (cleaned: no empty values). */
  get filters(): IAuditFilters {
    return { ...this._filters };
  }

  get state(): AuditModelState {
    return this._state;
  }

  /** The server's message when the last request failed, else null. */
  get error(): string | null {
    return this._error;
  }

  /** The cursor of the next page (null: end of log, or nothing loaded yet). */
  get next(): number | null {
    return this._next;
  }

  /** Whether at least one page (of the current filters) has arrived. */
  get started(): boolean {
    return this._pages > 0;
  }

  /** Records per request (clamped to the server's 1..5000). */
  get pageSize(): number {
    return this._pageSize;
  }
  set pageSize(value: number) {
    const n = Math.floor(Number(value));
    this._pageSize = Number.isFinite(n) ? Math.min(5000, Math.max(1, n)) : 200;
  }

  /** Index of a loaded record by seq, or -1. */
  indexOf(seq: number): number {
    return this._index.get(seq) ?? -1;
  }

  /**
   * Apply new filters: drop the loaded records (aborting a request in
   * flight) and load the first page.
   */
  setFilters(filters: IAuditFilters): Promise<void> {
    this._generation++;
    this._controller?.abort();
    this._controller = null;
    this._inFlight = null;
    this._filters = cleanFilters(filters);
    this._records = [];
    this._index.clear();
    this._next = null;
    this._pages = 0;
    this._error = null;
    this._state = 'idle';
    this._changed.emit();
    return this.loadMore();
  }

  /**
   * Load the next page. A no-op while a request is in flight (it returns
   * that request) and at the end of the log.
   */
  loadMore(): Promise<void> {
    if (this._inFlight) {
      return this._inFlight;
    }
    if (this._state === 'end' || (this._pages > 0 && this._next === null)) {
      return Promise.resolve();
    }
    const generation = this._generation;
    const controller =
      typeof AbortController !== 'undefined' ? new AbortController() : null;
    this._controller = controller;
    const params: IAuditQueryParams = {
      ...this._filters,
      limit: this._pageSize,
      order: 'desc'
    };
    if (this._pages > 0 && this._next !== null) {
      params.after = this._next;
    }
    this._state = 'loading';
    this._error = null;
    this._changed.emit();
    const first = this._pages === 0;
    const request = this._fetch(params, controller?.signal)
      .then(
        page => {
          if (generation !== this._generation) {
            return;
          }
          this._append(page);
        },
        error => {
          if (generation !== this._generation) {
            return;
          }
          this._state = 'error';
          this._error = errorReason(error);
        }
      )
      .then(() => {
        if (generation !== this._generation) {
          return;
        }
        this._inFlight = null;
        this._controller = null;
        this._changed.emit();
        if (first) {
          this._firstPageLoaded.emit();
        }
      });
    this._inFlight = request;
    return request;
  }

  /** Retry after an error. */
  retry(): Promise<void> {
    if (this._state === 'error') {
      this._state = 'idle';
    }
    return this.loadMore();
  }

  /** Abort what is in flight; the model stays usable. */
  dispose(): void {
    this._generation++;
    this._controller?.abort();
    this._controller = null;
    this._inFlight = null;
    Signal.clearData(this);
  }

  private _append(page: IAuditPage): void {
    const records = Array.isArray(page?.records) ? page.records : [];
    for (const record of records) {
      if (this._index.has(record.seq)) {
        continue; // a record appended meanwhile can not shift keyset pages, but be safe
      }
      this._index.set(record.seq, this._records.length);
      this._records.push(record);
    }
    this._pages++;
    this._next = typeof page?.next === 'number' ? page.next : null;
    this._state = this._next === null ? 'end' : 'idle';
  }

  private _fetch: AuditPageFetcher;
  private _pageSize = 200;
  private _filters: IAuditFilters = {};
  private _records: IAuditRecord[] = [];
  private _index = new Map<number, number>();
  private _next: number | null = null;
  private _pages = 0;
  private _state: AuditModelState = 'idle';
  private _error: string | null = null;
  private _inFlight: Promise<void> | null = null;
  private _controller: AbortController | null = null;
  private _generation = 0;
  private _changed = new Signal<this, void>(this);
  private _firstPageLoaded = new Signal<this, void>(this);
}

export namespace AuditPagedModel {
  export interface IOptions {
    fetchPage: AuditPageFetcher;
    pageSize: number;
  }
}
