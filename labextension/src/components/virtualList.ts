/**
 * A small virtualised list: fixed row height, absolutely positioned rows,
 * only the visible rows plus an overscan in the DOM, rows recycled, the
 * scroll handler throttled to one render per animation frame.
 *
 * The list knows only a row count; the owner renders a row's content in
 * `renderRow(row, index)`. Rendering is O(visible rows) whatever the count.
 */
import type { Message } from '@lumino/messaging';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

/** Fallback viewport height (px) while the list is not laid out yet. */
const FALLBACK_VIEWPORT = 800;

export class VirtualList extends Widget {
  constructor(options: VirtualList.IOptions) {
    super();
    this.addClass('jp-guard-vlist');
    this.rowHeight = Math.max(1, options.rowHeight);
    this.overscan = Math.max(0, options.overscan ?? 10);
    this.nearEndRows = Math.max(0, options.nearEndRows ?? 0);
    this._createRow = options.createRow;
    this._renderRow = options.renderRow;
    this._onNearEnd = options.onNearEnd ?? null;

    const node = this.node;
    node.tabIndex = 0;
    node.setAttribute('role', 'listbox');
    if (options.label) {
      node.setAttribute('aria-label', options.label);
    }

    this._spacer = document.createElement('div');
    this._spacer.className = 'jp-guard-vlist-spacer';
    this._spacer.setAttribute('aria-hidden', 'true');
    node.appendChild(this._spacer);

    this.footer = document.createElement('div');
    this.footer.className = 'jp-guard-vlist-footer';
    this.footer.style.height = `${this.rowHeight}px`;
    node.appendChild(this.footer);

    node.addEventListener('scroll', this._onScroll, { passive: true });
    node.addEventListener('click', this._onClick);
    node.addEventListener('keydown', this._onKeyDown);
    this._layoutRows();
  }

  /** Height of every row in px. */
  readonly rowHeight: number;
  /** Rows rendered above and below the viewport. */
  readonly overscan: number;
  /** `onNearEnd` fires when the last visible row is this close to the end. */
  nearEndRows: number;
  /**
   * The element after the last row (e.g. "Loading…" / "End of log"); its
   * content belongs to the owner, its position to the list.
   */
  readonly footer: HTMLDivElement;

  /** Emits the new selected index (-1: none) when the selection changes. */
  get selectionChanged(): ISignal<this, number> {
    return this._selectionChanged;
  }

  /** Number of rows. */
  get count(): number {
    return this._count;
  }
  set count(value: number) {
    const count = Math.max(0, Math.floor(value));
    if (count === this._count) {
      return;
    }
    this._count = count;
    if (this._selected >= count) {
      this._selected = -1;
    }
    this._layoutRows();
    this.render();
  }

  /** The selected row, or -1. */
  get selectedIndex(): number {
    return this._selected;
  }

  /** The row elements currently in the DOM, by index (for tests and owners). */
  get renderedRows(): ReadonlyMap<number, HTMLElement> {
    return this._rows;
  }

  /** Select a row (-1: none), scroll it into view, emit `selectionChanged`. */
  select(index: number, options: { scroll?: boolean; focus?: boolean } = {}): void {
    const target = index < 0 || this._count === 0 ? -1 : Math.min(index, this._count - 1);
    if (target >= 0 && options.scroll !== false) {
      this.scrollToIndex(target);
    }
    if (options.focus) {
      this.node.focus();
    }
    if (target === this._selected) {
      return;
    }
    this._selected = target;
    for (const [i, row] of this._rows) {
      this._markSelected(row, i === target);
    }
    this._selectionChanged.emit(target);
  }

  /** Scroll so that the row is visible, and render. */
  scrollToIndex(index: number): void {
    const viewport = this._viewportHeight();
    const top = index * this.rowHeight;
    const bottom = top + this.rowHeight;
    const scrollTop = this.node.scrollTop;
    if (top < scrollTop) {
      this.node.scrollTop = top;
    } else if (bottom > scrollTop + viewport) {
      this.node.scrollTop = bottom - viewport;
    }
    this.render();
  }

  /**
   * Re-render the content of every row in the DOM (e.g. after the data behind
   * the indices changed); otherwise only rows whose index changed are redrawn.
   */
  invalidate(): void {
    this._rows.forEach(row => {
      delete row.dataset.index;
    });
    const rows = Array.from(this._rows.values());
    this._rows.clear();
    this._free.push(...rows);
    this.render();
  }

  /** Render the visible rows now (synchronously). */
  render(): void {
    if (this.isDisposed) {
      return;
    }
    const h = this.rowHeight;
    const viewport = this._viewportHeight();
    const scrollTop = this.node.scrollTop;
    const firstVisible = Math.floor(scrollTop / h);
    const lastVisible = Math.min(
      this._count - 1,
      Math.floor((scrollTop + viewport - 1) / h)
    );
    const start = Math.max(0, firstVisible - this.overscan);
    const end = Math.min(this._count - 1, lastVisible + this.overscan);

    // Recycle the rows that left the range.
    for (const [i, row] of this._rows) {
      if (i < start || i > end) {
        this._rows.delete(i);
        this._free.push(row);
      }
    }
    for (let i = start; i <= end; i++) {
      let row = this._rows.get(i);
      if (row) {
        continue;
      }
      row = this._free.pop();
      if (!row) {
        row = this._createRow();
        row.setAttribute('role', 'option');
        row.classList.add('jp-guard-vlist-row');
        row.style.height = `${h}px`;
      }
      if (row.parentNode !== this.node) {
        this.node.appendChild(row);
      }
      row.dataset.index = String(i);
      row.style.transform = `translateY(${i * h}px)`;
      this._renderRow(row, i);
      this._markSelected(row, i === this._selected);
      this._rows.set(i, row);
    }
    // Rows not needed now leave the DOM (kept for reuse).
    for (const row of this._free) {
      if (row.parentNode) {
        row.parentNode.removeChild(row);
      }
    }

    if (
      this._onNearEnd &&
      this._count > 0 &&
      lastVisible >= this._count - 1 - this.nearEndRows &&
      this._nearEndFiredAt !== this._count
    ) {
      this._nearEndFiredAt = this._count;
      this._onNearEnd();
    }
  }

  /** Allow `onNearEnd` to fire again for the current count (e.g. after a retry). */
  resetNearEnd(): void {
    this._nearEndFiredAt = -1;
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this.node.removeEventListener('scroll', this._onScroll);
    this.node.removeEventListener('click', this._onClick);
    this.node.removeEventListener('keydown', this._onKeyDown);
    if (this._frame !== null) {
      cancelFrame(this._frame);
      this._frame = null;
    }
    super.dispose();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this.render();
  }

  protected override onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.render();
  }

  protected override onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.render();
  }

  private _viewportHeight(): number {
    const height = this.node.clientHeight;
    if (height > 0) {
      return height;
    }
    return typeof window !== 'undefined' && window.innerHeight > 0
      ? window.innerHeight
      : FALLBACK_VIEWPORT;
  }

  private _layoutRows(): void {
    const rowsHeight = this._count * this.rowHeight;
    this._spacer.style.height = `${rowsHeight + this.rowHeight}px`;
    this.footer.style.transform = `translateY(${rowsHeight}px)`;
  }

  private _markSelected(row: HTMLElement, selected: boolean): void {
    row.setAttribute('aria-selected', selected ? 'true' : 'false');
    row.classList.toggle('jp-mod-selected', selected);
  }

  private _onScroll = (): void => {
    if (this._frame === null) {
      this._frame = requestFrame(() => {
        this._frame = null;
        this.render();
      });
    }
  };

  private _onClick = (event: MouseEvent): void => {
    const target = event.target as HTMLElement | null;
    const row = target?.closest?.('.jp-guard-vlist-row') as HTMLElement | null;
    if (!row || row.parentNode !== this.node || row.dataset.index === undefined) {
      return;
    }
    this.select(Number(row.dataset.index), { scroll: false });
  };

  private _onKeyDown = (event: KeyboardEvent): void => {
    if (this._count === 0 || event.target !== this.node) {
      return;
    }
    const page = Math.max(1, Math.floor(this._viewportHeight() / this.rowHeight) - 1);
    const current = this._selected;
    let next: number;
    switch (event.key) {
      case 'ArrowDown':
        next = current < 0 ? 0 : current + 1;
        break;
      case 'ArrowUp':
        next = current < 0 ? 0 : current - 1;
        break;
      case 'PageDown':
        next = Math.max(0, current) + page;
        break;
      case 'PageUp':
        next = Math.max(0, current) - page;
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = this._count - 1;
        break;
      case 'Enter':
      case ' ':
        next = current < 0 ? this._firstVisible() : current;
        break;
      default:
        return;
    }
    event.preventDefault();
    event.stopPropagation();
    this.select(Math.max(0, Math.min(this._count - 1, next)));
  };

  private _firstVisible(): number {
    return Math.min(this._count - 1, Math.floor(this.node.scrollTop / this.rowHeight));
  }

  private _createRow: () => HTMLElement;
  private _renderRow: (row: HTMLElement, index: number) => void;
  private _onNearEnd: (() => void) | null;
  private _spacer: HTMLDivElement;
  private _count = 0;
  private _selected = -1;
  private _rows = new Map<number, HTMLElement>();
  private _free: HTMLElement[] = [];
  private _frame: number | null = null;
  private _nearEndFiredAt = -1;
  private _selectionChanged = new Signal<this, number>(this);
}

export namespace VirtualList {
  export interface IOptions {
    /** Height of every row in px. */
    rowHeight: number;
    /** Rows rendered above and below the viewport (default 10). */
    overscan?: number;
    /** Create an empty row element (called only when none can be recycled). */
    createRow: () => HTMLElement;
    /** Fill a (possibly recycled) row with the content of row `index`. */
    renderRow: (row: HTMLElement, index: number) => void;
    /** How close (rows) to the end the last visible row must be for onNearEnd. */
    nearEndRows?: number;
    /** Called once per row count when the user reaches near the end. */
    onNearEnd?: () => void;
    /** Accessible name of the list. */
    label?: string;
  }
}

function requestFrame(callback: () => void): number {
  if (typeof requestAnimationFrame === 'function') {
    return requestAnimationFrame(callback);
  }
  return setTimeout(callback, 16) as unknown as number;
}

function cancelFrame(handle: number): void {
  if (typeof cancelAnimationFrame === 'function') {
    cancelAnimationFrame(handle);
  } else {
    clearTimeout(handle);
  }
}
