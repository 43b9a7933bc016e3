/**
 * The catalog sidebar: what data exists, how sensitive it is, whom to ask,
 * what this user may do with it (optionally under a purpose), and how to
 * read it in a notebook.
 */

import { Clipboard } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { GuardRequest, errorMessage, queryString } from '../handler';
import { createBadge, formatContact, rememberLabels } from './labelBadge';
import { datasetSnippet, sourceSnippet } from './snippet';
import {
  CATALOG_PANEL_ID,
  Effect,
  ICatalogDataset,
  ICatalogResponse,
  ICatalogSource,
  IGuardLabel
} from '../tokens';
import { el } from './dom';

// ---------------------------------------------------------------------------
// Pure formatting
// ---------------------------------------------------------------------------

/** What an effect means to the user: raw, redacted, needs a justification, denied. */
export function effectWord(effect: Effect | string): string {
  switch (effect) {
    case 'allow':
      return 'raw';
    case 'redact':
      return 'redacted';
    case 'justify':
      return 'needs a justification';
    case 'deny':
      return 'denied';
    default:
      return String(effect);
  }
}

/** `Read: raw`, `Export: redacted`, `Download: denied`. */
export function mayLines(may: ICatalogDataset['may']): { action: string; effect: string; text: string }[] {
  return (
    [
      ['read', 'Read'],
      ['export', 'Export'],
      ['download', 'Download']
    ] as const
  ).map(([action, name]) => ({
    action,
    effect: may[action],
    text: `${name}: ${effectWord(may[action])}`
  }));
}

/** `ssn: US_SSN → mask`, `notes: FREE_TEXT`, `id: not personal data`. */
export function columnText(column: ICatalogDataset['columns'][number]): string {
  const entity = column.entity ?? 'no PII class';
  const rule = column.rule ? ` → ${column.rule}` : '';
  return `${column.name}: ${entity}${rule}`;
}

/** Rank and colour of a label name from the catalog's labels (unknown: rank 0). */
export function labelOf(labels: readonly IGuardLabel[], name: string): { rank: number; color: string } {
  const found = labels.find(l => l.name === name);
  return { rank: found?.rank ?? 0, color: found?.color ?? '' };
}

/** The user may not read it and should ask: show a Request access button. */
export function needsAccess(dataset: ICatalogDataset): boolean {
  return dataset.may.read === 'deny';
}

// ---------------------------------------------------------------------------
// The panel
// ---------------------------------------------------------------------------


/** Copy text: the async clipboard API, else JupyterLab's copy-event fallback. */
export async function copyText(text: string): Promise<void> {
  try {
    if (!navigator.clipboard?.writeText) {
      throw new Error('no async clipboard');
    }
    await navigator.clipboard.writeText(text);
  } catch {
    // Insecure origins and some browsers refuse navigator.clipboard.
    Clipboard.copyToSystem(text);
  }
}

export class CatalogPanel extends Widget {
  constructor(options: CatalogPanel.IOptions) {
    super();
    this._request = options.request;
    this._onRequestAccess = options.onRequestAccess ?? null;
    this._delay = options.delay ?? 300;
    this.id = CATALOG_PANEL_ID;
    this.addClass('jp-guard-catalog');
    this.title.caption = 'Data catalog';

    const header = el('div', 'jp-guard-catalog-header');
    header.appendChild(el('h2', 'jp-guard-catalog-title', 'Data catalog'));
    const refresh = el('button', 'jp-guard-catalog-refresh jp-guard-button', 'Refresh');
    refresh.type = 'button';
    refresh.title = 'Ask the server for the catalog again';
    refresh.addEventListener('click', () => void this.refresh());
    header.appendChild(refresh);

    this._search = el('input', 'jp-guard-catalog-search jp-mod-styled');
    this._search.type = 'search';
    this._search.placeholder = 'Search datasets, columns, stewards…';
    this._search.setAttribute('aria-label', 'Search the data catalog');
    this._search.addEventListener('input', () => this._scheduleSearch());

    const purposeRow = el('label', 'jp-guard-catalog-purpose-row');
    purposeRow.append('What may I do for purpose: ');
    this._purpose = el('select', 'jp-guard-catalog-purpose jp-mod-styled');
    this._purpose.setAttribute('aria-label', 'Purpose to preview what you may do');
    this._setPurposes([]);
    this._purpose.addEventListener('change', () => void this.refresh());
    purposeRow.appendChild(this._purpose);

    this._status = el('div', 'jp-guard-catalog-message');
    this._status.setAttribute('role', 'status');
    this._list = el('div', 'jp-guard-catalog-list');
    this.node.append(header, this._search, purposeRow, this._status, this._list);
  }

  /** The last catalog answer shown, or null. */
  get catalog(): ICatalogResponse | null {
    return this._catalog;
  }

  /** The search text. */
  get query(): string {
    return this._search.value.trim();
  }

  /** The previewed purpose ('' = none). */
  get purpose(): string {
    return this._purpose.value;
  }

  /** Ask the server now with the current search and purpose; the latest answer wins. */
  async refresh(): Promise<void> {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    const seq = ++this._seq;
    this._status.textContent = 'Loading…';
    let catalog: ICatalogResponse;
    try {
      catalog = await this._request<ICatalogResponse>(
        `catalog${queryString({ q: this.query, purpose: this.purpose })}`
      );
    } catch (error) {
      if (seq === this._seq && !this.isDisposed) {
        this._status.textContent = `The catalog is unavailable: ${errorMessage(error)}`;
        this._status.classList.add('jp-mod-error');
      }
      return;
    }
    if (seq !== this._seq || this.isDisposed) {
      return; // a newer search is under way
    }
    this._status.classList.remove('jp-mod-error');
    this._catalog = catalog;
    rememberLabels(catalog.labels);
    this._render(catalog);
  }

  override dispose(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    super.dispose();
  }

  protected override onAfterShow(): void {
    // Load on first show; later shows keep what is there (Refresh asks again).
    if (!this._catalog && this._seq === 0) {
      void this.refresh();
    }
  }

  // Typing fires on every key: ask once the user pauses.
  private _scheduleSearch(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      void this.refresh();
    }, this._delay);
  }

  private _setPurposes(purposes: readonly string[]): void {
    const current = this._purpose.value;
    this._purpose.textContent = '';
    const none = el('option', undefined, 'none declared');
    none.value = '';
    this._purpose.appendChild(none);
    for (const purpose of purposes) {
      const option = el('option', undefined, purpose);
      option.value = purpose;
      this._purpose.appendChild(option);
    }
    this._purpose.value = purposes.includes(current) ? current : '';
  }

  private _render(catalog: ICatalogResponse): void {
    this._setPurposes(catalog.purposes ?? []);
    const list = this._list;
    list.textContent = '';
    const sourceNames = (catalog.sources ?? []).map(s => s.name);
    const datasets = catalog.datasets ?? [];
    const sources = catalog.sources ?? [];
    this._status.textContent =
      datasets.length + sources.length === 0
        ? this.query
          ? `Nothing in the catalog matches “${this.query}”.`
          : 'The catalog lists nothing you may discover.'
        : '';
    if (datasets.length > 0) {
      list.appendChild(el('h3', 'jp-guard-catalog-section', 'Datasets'));
      for (const dataset of datasets) {
        list.appendChild(this._datasetEntry(dataset, catalog.labels ?? [], sourceNames));
      }
    }
    if (sources.length > 0) {
      list.appendChild(el('h3', 'jp-guard-catalog-section', 'Data sources'));
      for (const source of sources) {
        list.appendChild(this._sourceEntry(source, catalog.labels ?? []));
      }
    }
  }

  private _datasetEntry(
    dataset: ICatalogDataset,
    labels: readonly IGuardLabel[],
    sourceNames: string[]
  ): HTMLElement {
    const entry = el('section', 'jp-guard-catalog-entry');
    entry.dataset.dataset = dataset.name;
    entry.setAttribute('aria-label', `Dataset ${dataset.name}`);
    this._describe(entry, dataset, labels, dataset.purposes);
    if (dataset.purposes.length > 0) {
      entry.appendChild(
        el('div', 'jp-guard-catalog-purposes', `Purposes: ${dataset.purposes.join(', ')}`)
      );
    }

    const may = el('div', 'jp-guard-catalog-may');
    for (const line of mayLines(dataset.may)) {
      const item = el('span', 'jp-guard-may-item', line.text);
      item.dataset.action = line.action;
      item.dataset.effect = line.effect;
      may.appendChild(item);
    }
    entry.appendChild(may);

    if (dataset.columns.length > 0) {
      const columns = el('ul', 'jp-guard-catalog-columns');
      columns.setAttribute('aria-label', 'Columns with personal data');
      for (const column of dataset.columns) {
        const item = el('li', 'jp-guard-catalog-column', columnText(column));
        item.dataset.column = column.name;
        columns.appendChild(item);
      }
      entry.appendChild(columns);
    }

    if (dataset.locations.length > 0) {
      const locations = el('ul', 'jp-guard-catalog-locations');
      for (const loc of dataset.locations) {
        const item = el('li', 'jp-guard-catalog-location', loc.location);
        item.dataset.kind = loc.kind;
        locations.appendChild(item);
      }
      entry.appendChild(locations);
    }

    const snippet = datasetSnippet(dataset.locations, sourceNames);
    if (snippet) {
      entry.appendChild(this._snippetNode(snippet));
    }
    if (needsAccess(dataset)) {
      entry.appendChild(this._requestButton(dataset.name));
    }
    return entry;
  }

  /** Name, label badge, description and steward: what a dataset and a source entry share. */
  private _describe(
    entry: HTMLElement,
    item: ICatalogDataset | ICatalogSource,
    labels: readonly IGuardLabel[],
    purposes?: string[]
  ): void {
    const { rank, color } = labelOf(labels, item.label);
    const head = el('div', 'jp-guard-catalog-entry-head');
    head.append(
      el('span', 'jp-guard-catalog-name', item.name),
      createBadge({
        label: item.label,
        rank,
        color,
        dataset: item.name,
        description: item.description,
        steward: item.steward,
        purposes
      })
    );
    entry.appendChild(head);
    if (item.description) {
      entry.appendChild(el('p', 'jp-guard-catalog-description', item.description));
    }
    entry.appendChild(this._stewardNode(item.steward, item.owner));
  }

  private _sourceEntry(source: ICatalogSource, labels: readonly IGuardLabel[]): HTMLElement {
    const entry = el('section', 'jp-guard-catalog-source');
    entry.dataset.source = source.name;
    entry.setAttribute('aria-label', `Data source ${source.name}`);
    this._describe(entry, source, labels);
    const may = el('div', 'jp-guard-catalog-may');
    const credential = source.may.credential;
    const item = el(
      'span',
      'jp-guard-may-item',
      `Connect: ${credential === 'allow' || credential === 'redact' ? 'allowed' : effectWord(credential)}`
    );
    item.dataset.action = 'credential';
    item.dataset.effect = credential;
    may.appendChild(item);
    entry.appendChild(may);
    entry.appendChild(this._snippetNode(sourceSnippet(source.name)));
    if (credential === 'deny') {
      entry.appendChild(this._requestButton(source.name));
    }
    return entry;
  }

  private _stewardNode(steward: ICatalogDataset['steward'], owner: string | null): HTMLElement {
    const node = el('div', 'jp-guard-catalog-steward');
    node.append('Steward: ');
    if (steward?.email) {
      const link = el('a', undefined, formatContact(steward));
      link.href = `mailto:${steward.email}`;
      node.appendChild(link);
    } else {
      node.append(formatContact(steward));
    }
    if (owner) {
      node.append(` · Owner: ${owner}`);
    }
    return node;
  }

  private _snippetNode(snippet: string): HTMLElement {
    const wrap = el('div', 'jp-guard-snippet-wrap');
    const pre = el('pre', 'jp-guard-snippet', snippet);
    const copy = el('button', 'jp-guard-copy jp-guard-button', 'Copy');
    copy.type = 'button';
    copy.title = 'Copy the snippet to the clipboard';
    copy.addEventListener('click', () => {
      void copyText(snippet).then(() => {
        copy.textContent = 'Copied';
        setTimeout(() => {
          copy.textContent = 'Copy';
        }, 1500);
      });
    });
    wrap.append(pre, copy);
    return wrap;
  }

  private _requestButton(dataset: string): HTMLElement {
    const button = el('button', 'jp-guard-request-access jp-guard-button', 'Request access');
    button.type = 'button';
    button.title = `Ask the steward of ${dataset} for access`;
    button.addEventListener('click', () => this._onRequestAccess?.(dataset));
    return button;
  }

  private _request: GuardRequest;
  private _onRequestAccess: ((dataset: string) => void) | null;
  private _delay: number;
  private _search: HTMLInputElement;
  private _purpose: HTMLSelectElement;
  private _status: HTMLElement;
  private _list: HTMLElement;
  private _catalog: ICatalogResponse | null = null;
  private _seq = 0;
  private _timer: ReturnType<typeof setTimeout> | null = null;
}

export namespace CatalogPanel {
  export interface IOptions {
    request: GuardRequest;
    /** Runs CommandIDs.requestAccess for a dataset (or source). */
    onRequestAccess?: (dataset: string) => void;
    /** Milliseconds the search waits after the last key (default 300). */
    delay?: number;
  }
}
