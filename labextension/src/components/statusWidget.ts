import { Widget } from '@lumino/widgets';

import { errorMessage } from '../handler';

import { IGuardStatus, STATUS_NODE_ID } from '../tokens';

/** What the status bar item shows: its text and its tooltip. */
export interface IStatusView {
  text: string;
  title: string;
  ok: boolean;
}

/** `1 dataset`, `4 datasets`. */
export function pluralize(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}

function list(items: readonly string[] | undefined, empty = 'none'): string {
  return items && items.length > 0 ? items.join(', ') : empty;
}

/** The status bar text, e.g. `Guard: 4 datasets · researcher`. */
export function formatStatusText(status: IGuardStatus): string {
  const roles = list(status.user.roles, 'no role');
  const warning = status.catalog.error ? ' ⚠' : '';
  const datasets = pluralize(status.catalog.datasets, 'dataset');
  return `Guard: ${datasets}${warning} · ${roles}`;
}

/** The tooltip: version, user, catalog, labels and audit store. */
export function formatStatusTitle(status: IGuardStatus): string {
  const { user, catalog, audit } = status;
  const lines = [
    `jupyter_guard ${status.version}`,
    `User: ${user.name}`,
    `Roles: ${list(user.roles)}`,
    `Groups: ${list(user.groups)}`,
    `Steward: ${user.steward ? 'yes' : 'no'}`,
    `Catalog: ${catalog.directory} (${pluralize(catalog.datasets, 'dataset')})`,
    `Labels: ${list(catalog.labels)}`,
    `Loaded: ${catalog.loaded_at ?? 'never'}`
  ];
  if (catalog.error) {
    lines.push(`Catalog error: ${catalog.error}`);
  }
  lines.push(`Audit: ${audit.store}, ${pluralize(audit.records, 'record')}`);
  return lines.join('\n');
}

/** Why a request failed, as one line for a tooltip (the server's message when it sent one). */
export const errorReason = errorMessage;

/** The view of a successful status response. */
export function statusView(status: IGuardStatus): IStatusView {
  return {
    text: formatStatusText(status),
    title: formatStatusTitle(status),
    ok: true
  };
}

/** The view when the status cannot be fetched or understood. */
export function unavailableView(error: unknown): IStatusView {
  return {
    text: 'Guard: unavailable',
    title: `jupyter_guard status unavailable: ${errorReason(error)}`,
    ok: false
  };
}

/**
 * The status bar item: shows the governance status and refreshes it
 * every `refreshInterval` seconds (0 turns the automatic refresh off).
 */
export class GuardStatusWidget extends Widget {
  constructor(options: GuardStatusWidget.IOptions) {
    super();
    this._fetchStatus = options.fetchStatus;
    this._onClick = options.onClick ?? null;
    this.id = STATUS_NODE_ID;
    this.addClass(STATUS_NODE_ID);
    this._label = document.createElement('span');
    this._label.className = 'jp-StatusBar-TextItem jp-guard-status-text';
    this.node.appendChild(this._label);
    this.node.addEventListener('click', this._handleClick);
    this._render({
      text: 'Guard: …',
      title: 'Loading jupyter_guard status',
      ok: true
    });
    this.refreshInterval = options.refreshInterval ?? 30;
  }

  /** The last status received, or null if the last refresh failed. */
  get status(): IGuardStatus | null {
    return this._status;
  }

  /** Seconds between refreshes; 0 or less turns the automatic refresh off. */
  get refreshInterval(): number {
    return this._refreshInterval;
  }
  set refreshInterval(seconds: number) {
    this._refreshInterval = Number.isFinite(seconds) ? Math.max(0, seconds) : 0;
    this._clearTimer();
    if (!this.isDisposed && this._refreshInterval > 0) {
      this._timer = window.setInterval(() => {
        void this.refresh();
      }, this._refreshInterval * 1000);
    }
  }

  /** Fetch the status now; concurrent calls share one request. */
  refresh(): Promise<void> {
    if (this._pending === null) {
      this._pending = this._doRefresh().finally(() => {
        this._pending = null;
      });
    }
    return this._pending;
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._clearTimer();
    this.node.removeEventListener('click', this._handleClick);
    super.dispose();
  }

  private async _doRefresh(): Promise<void> {
    let view: IStatusView;
    try {
      const status = await this._fetchStatus();
      view = statusView(status);
      this._status = status;
    } catch (error) {
      this._status = null;
      view = unavailableView(error);
    }
    if (!this.isDisposed) {
      this._render(view);
    }
  }

  private _render(view: IStatusView): void {
    this._label.textContent = view.text;
    this.node.title = view.title;
    this.toggleClass('jp-mod-unavailable', !view.ok);
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      window.clearInterval(this._timer);
      this._timer = null;
    }
  }

  private _handleClick = (): void => {
    this._onClick?.();
  };

  private _fetchStatus: () => Promise<IGuardStatus>;
  private _onClick: (() => void) | null;
  private _label: HTMLSpanElement;
  private _status: IGuardStatus | null = null;
  private _refreshInterval = 0;
  private _timer: number | null = null;
  private _pending: Promise<void> | null = null;
}

export namespace GuardStatusWidget {
  export interface IOptions {
    /** Fetches the status; a rejection shows `Guard: unavailable`. */
    fetchStatus: () => Promise<IGuardStatus>;
    /** Seconds between refreshes (default 30; 0 = never). */
    refreshInterval?: number;
    /** Called when the item is clicked. */
    onClick?: () => void;
  }
}
