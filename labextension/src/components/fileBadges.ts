/**
 * Sensitivity-label badges in the default file browser.
 *
 * For each directory listing we ask the server once (`POST catalog/labels`
 * with every item path not already cached), cache the answers by path, and
 * put a badge after the name of each governed item. The listing re-renders
 * its nodes whenever it likes (sorting, filtering, polling, renaming) and
 * reuses them for other items, so a MutationObserver re-applies the badges
 * from the cache after every render.
 *
 * Nothing here may break the file browser: every failure ends in "no badge".
 */

import type { IDisposable } from '@lumino/disposable';
import type { ISignal } from '@lumino/signaling';

import { GuardRequest, postJSON } from '../handler';
import {
  BADGE_CLASS,
  IBadgeInfo,
  badgeKey,
  createBadge,
  rememberLabels
} from './labelBadge';
import type { IPathLabel, IPathLabelsResponse } from '../tokens';

/** The server refuses more paths per request (tokens.ts). */
export const MAX_PATHS_PER_REQUEST = 2000;

const ITEM_SELECTOR = '.jp-DirListing-item';
const TEXT_SELECTOR = '.jp-DirListing-itemText';
const CONTENT_SELECTOR = '.jp-DirListing-content';

/** The parts of FileBrowserModel used here (structural, so tests can fake it). */
export interface IListingModel {
  readonly path: string;
  readonly driveName?: string;
  items(): IterableIterator<{ name: string; path: string }>;
  readonly refreshed: ISignal<any, void>;
  readonly pathChanged: ISignal<any, any>;
}

/** The parts of FileBrowser used here. */
export interface IFileBrowserLike {
  readonly node: HTMLElement;
  readonly model: IListingModel;
}

/** A cached answer: the entry (null: ungoverned) and when it was fetched. */
export interface ICacheEntry {
  entry: IPathLabel | null;
  time: number;
}

/** `a/b` + `c` -> `a/b/c`; the root is ''. */
export function joinPath(dir: string, name: string): string {
  const clean = dir.replace(/^\/+|\/+$/g, '');
  return clean ? `${clean}/${name}` : name;
}

/** Paths still to ask about: not cached (or cached longer than maxAge ms ago), not in flight. */
export function pathsToFetch(
  paths: Iterable<string>,
  cache: ReadonlyMap<string, ICacheEntry>,
  inFlight: ReadonlySet<string>,
  now: number,
  maxAge: number
): string[] {
  const wanted = new Set<string>();
  for (const path of paths) {
    const cached = cache.get(path);
    const fresh = cached !== undefined && now - cached.time < maxAge;
    if (!fresh && !inFlight.has(path)) {
      wanted.add(path);
    }
  }
  return [...wanted];
}

/** Split into requests of at most `size` paths. */
export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) {
    out.push(items.slice(i, i + size));
  }
  return out;
}

/** The badge of one catalog answer. */
export function pathBadgeInfo(entry: IPathLabel): IBadgeInfo {
  return {
    label: entry.label,
    rank: entry.rank,
    color: entry.color,
    dataset: entry.dataset,
    description: entry.description,
    steward: entry.steward,
    purposes: entry.purposes,
    contains: entry.contains
  };
}

/**
 * The listing's item nodes with the path each one shows: the name in
 * `.jp-DirListing-itemText` joined to the directory. Nodes being renamed
 * (no text node) are left out.
 */
export function mapItemNodes(
  content: ParentNode,
  dir: string
): { node: HTMLElement; text: HTMLElement; path: string }[] {
  const out: { node: HTMLElement; text: HTMLElement; path: string }[] = [];
  content.querySelectorAll<HTMLElement>(ITEM_SELECTOR).forEach(node => {
    const text = node.querySelector<HTMLElement>(TEXT_SELECTOR);
    const name = text?.textContent ?? '';
    if (text && name) {
      out.push({ node, text, path: joinPath(dir, name) });
    }
  });
  return out;
}

/**
 * Make one item node show `entry`'s badge (or none). Touches the DOM only when
 * something changes, so the observer that calls it settles.
 */
export function applyBadge(
  item: { node: HTMLElement; text: HTMLElement },
  entry: IPathLabel | null | undefined
): void {
  const existing = Array.from(
    item.node.querySelectorAll<HTMLElement>(`.${BADGE_CLASS}`)
  );
  if (!entry) {
    existing.forEach(badge => badge.remove());
    return;
  }
  const info = pathBadgeInfo(entry);
  const [first, ...extra] = existing;
  extra.forEach(node => node.remove());
  if (
    first &&
    first.dataset.guardKey === badgeKey(info) &&
    first.previousElementSibling === item.text
  ) {
    return; // already right
  }
  first?.remove();
  item.text.insertAdjacentElement('afterend', createBadge(info));
}

/** Badges for the file browser; dispose to remove them and every listener. */
export class FileBadges implements IDisposable {
  constructor(options: FileBadges.IOptions) {
    this._browser = options.browser;
    this._request = options.request;
    this._maxAge = options.maxAge ?? 5 * 60 * 1000;
    this._now = options.now ?? (() => Date.now());
    this._enabled = options.enabled ?? true;
    const model = this._browser.model;
    model.refreshed.connect(this._onListingChanged, this);
    model.pathChanged.connect(this._onListingChanged, this);
    this._observer = new MutationObserver(() => this.apply());
    this._observe();
    if (this._enabled) {
      this._onListingChanged();
    }
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** The showFileBadges setting: off removes every badge and stops asking the server. */
  get enabled(): boolean {
    return this._enabled;
  }
  set enabled(value: boolean) {
    if (value === this._enabled) {
      return;
    }
    this._enabled = value;
    if (value) {
      void this.update();
    } else {
      this.apply();
    }
  }

  /** The cached answers, by path (read-only view for tests and tools). */
  get cache(): ReadonlyMap<string, ICacheEntry> {
    return this._cache;
  }

  /** Forget every answer (the catalog was reloaded); the next update asks again. */
  clearCache(): void {
    this._cache.clear();
  }

  /**
   * Ask the server about the current directory's items not yet cached: one
   * request per listing change (split only past the server's 2000-path limit).
   */
  async update(): Promise<void> {
    if (this._isDisposed || !this._enabled || !this._governable()) {
      this.apply();
      return;
    }
    const paths = pathsToFetch(
      this._itemPaths(),
      this._cache,
      this._inFlight,
      this._now(),
      this._maxAge
    );
    if (paths.length === 0) {
      this.apply();
      return;
    }
    await Promise.all(
      chunk(paths, MAX_PATHS_PER_REQUEST).map(batch => this._fetch(batch))
    );
    this.apply();
  }

  /** Re-apply the badges from the cache to the listing's nodes. */
  apply(): void {
    if (this._isDisposed) {
      return;
    }
    try {
      const content = this._content();
      if (!content) {
        return;
      }
      const show = this._enabled && this._governable();
      for (const item of mapItemNodes(content, this._browser.model.path)) {
        applyBadge(item, show ? this._cache.get(item.path)?.entry : null);
      }
    } catch (error) {
      this._warn(error);
    } finally {
      // Our own edits must not wake the observer again.
      this._observer.takeRecords();
    }
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._enabled = false;
    this.apply();
    this._isDisposed = true;
    this._observer.disconnect();
    const model = this._browser.model;
    model.refreshed.disconnect(this._onListingChanged, this);
    model.pathChanged.disconnect(this._onListingChanged, this);
  }

  // pathChanged and refreshed come together on a directory change: coalesce
  // them (and polling refreshes) into one update per turn of the event loop.
  private _onListingChanged(): void {
    if (this._scheduled || this._isDisposed) {
      return;
    }
    this._scheduled = true;
    void Promise.resolve().then(() => {
      this._scheduled = false;
      this._observe(); // the listing may have been (re)created
      void this.update();
    });
  }

  private async _fetch(paths: string[]): Promise<void> {
    paths.forEach(path => this._inFlight.add(path));
    try {
      const reply = await this._request<IPathLabelsResponse>(
        'catalog/labels',
        postJSON({ paths })
      );
      rememberLabels(reply?.labels);
      const time = this._now();
      const entries = reply?.entries ?? {};
      for (const path of paths) {
        // A path the server left out is ungoverned as far as we can tell.
        this._cache.set(path, { entry: entries[path] ?? null, time });
      }
    } catch (error) {
      // Not cached: the next listing change asks again.
      this._warn(error);
    } finally {
      paths.forEach(path => this._inFlight.delete(path));
    }
  }

  /** Item paths of the current listing. */
  private _itemPaths(): string[] {
    const out: string[] = [];
    for (const item of this._browser.model.items()) {
      out.push(item.path);
    }
    return out;
  }

  /** Only the server's own drive has paths the catalog knows (relative to its root). */
  private _governable(): boolean {
    return !this._browser.model.driveName;
  }

  private _content(): HTMLElement | null {
    return this._browser.node.querySelector<HTMLElement>(CONTENT_SELECTOR);
  }

  private _observe(): void {
    const content = this._content();
    if (!content || content === this._observed) {
      return;
    }
    this._observer.disconnect();
    this._observed = content;
    this._observer.observe(content, {
      childList: true,
      subtree: true,
      characterData: true
    });
  }

  private _warn(error: unknown): void {
    if (!this._warned) {
      this._warned = true;
      console.warn('jupyter-guard: file browser label badges unavailable', error);
    }
  }

  private _browser: IFileBrowserLike;
  private _request: GuardRequest;
  private _maxAge: number;
  private _now: () => number;
  private _enabled: boolean;
  private _cache = new Map<string, ICacheEntry>();
  private _inFlight = new Set<string>();
  private _observer: MutationObserver;
  private _observed: HTMLElement | null = null;
  private _scheduled = false;
  private _warned = false;
  private _isDisposed = false;
}

export namespace FileBadges {
  export interface IOptions {
    browser: IFileBrowserLike;
    request: GuardRequest;
    /** The showFileBadges setting (default true). */
    enabled?: boolean;
    /** Milliseconds a cached answer is trusted before a listing change asks again (default 5 min). */
    maxAge?: number;
    /** Clock (tests). */
    now?: () => number;
  }
}
