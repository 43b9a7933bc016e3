/**
 * The notebook governance indicator: a toolbar item that says what the
 * notebook's kernel has read (highest label, datasets, denials, purpose),
 * and a dialog with the details and a purpose picker.
 *
 * It asks `GET kernels/<id>` when something may have changed (an audit event
 * about this kernel, a finished execution, a kernel change or restart). Those
 * triggers arrive in bursts, so they are coalesced, with at most one request
 * in flight; an answer with the same `version` as the shown one changes
 * nothing and is not re-rendered.
 */

import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { GuardRequest, errorMessage, postJSON } from '../handler';
import { labelOnlyBadge, paletteIndex } from './labelBadge';
import { pluralize } from './statusWidget';
import {
  AUDIT_EVENT_SCHEMA_ID,
  EventEmission,
  IKernelDataset,
  IKernelDenial,
  IKernelGovernance
} from '../tokens';
import { el } from './dom';

export const INDICATOR_CLASS = 'jp-guard-indicator';

/** Toolbar item name (`panel.toolbar.insertItem(..., TOOLBAR_ITEM_NAME, ...)`). */
export const TOOLBAR_ITEM_NAME = 'guardGovernance';

// ---------------------------------------------------------------------------
// Pure formatting
// ---------------------------------------------------------------------------

/** What the indicator knows about its kernel. */
export type IndicatorState =
  | { kind: 'loading' }
  | { kind: 'nokernel' }
  | { kind: 'unavailable'; reason: string }
  | { kind: 'governance'; governance: IKernelGovernance };

/** What the indicator shows. */
export interface IIndicatorView {
  /** Highest label, or 'none' (the data-guard-label attribute). */
  label: string;
  /** Palette rank of the label, or null: no colour. */
  rank: number | null;
  text: string;
  title: string;
  /** data-guard-state: loading | nokernel | ungoverned | governed | unavailable. */
  state: string;
}

const EFFECT_WORDS: { [effect: string]: string } = {
  allow: 'allowed',
  redact: 'redacted',
  justify: 'with justification',
  deny: 'denied'
};

/** `{allow: 2, redact: 1}` -> `2 allowed, 1 redacted` (known effects first, in policy order). */
export function formatEffects(effects: { [effect: string]: number }): string {
  const known = Object.keys(EFFECT_WORDS);
  const keys = [
    ...known.filter(k => k in effects),
    ...Object.keys(effects)
      .filter(k => !known.includes(k))
      .sort()
  ];
  const parts = keys
    .filter(k => effects[k] > 0)
    .map(k => `${effects[k]} ${EFFECT_WORDS[k] ?? k}`);
  return parts.length > 0 ? parts.join(', ') : 'no reads';
}

/** Datasets the kernel was permitted to read (at least one decision other than deny). */
export function readDatasets(gov: IKernelGovernance): IKernelDataset[] {
  return gov.datasets.filter(d =>
    Object.entries(d.effects).some(([effect, n]) => effect !== 'deny' && n > 0)
  );
}

/** Cut to `max` characters with an ellipsis (toolbars are narrow). */
export function shorten(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(1, max - 1))}…`;
}

/** `restricted · 2 datasets · 1 denied · purpose: treatment-research`. */
export function indicatorText(gov: IKernelGovernance): string {
  const parts: string[] = [];
  const read = readDatasets(gov).length;
  if (gov.highest) {
    parts.push(gov.highest.label);
    if (read > 0) {
      parts.push(pluralize(read, 'dataset'));
    }
  } else {
    parts.push('No governed data read');
  }
  if (gov.denials.length > 0) {
    parts.push(`${gov.denials.length} denied`);
  }
  if (gov.purpose) {
    parts.push(`purpose: ${shorten(gov.purpose, 24)}`);
  }
  return parts.join(' · ');
}

/** First line of a denial message, for one-line lists. */
function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').trim();
}

/** The tooltip: every dataset with its label and effects, the purpose, the denials. */
export function indicatorTitle(gov: IKernelGovernance): string {
  const lines = ["Data governance of this notebook's kernel"];
  lines.push(`Highest label read: ${gov.highest ? gov.highest.label : 'none'}`);
  lines.push(`Purpose: ${gov.purpose ?? 'none declared'}`);
  if (gov.datasets.length > 0) {
    lines.push('Datasets:');
    for (const d of gov.datasets) {
      lines.push(`  ${d.dataset} (${d.label}): ${formatEffects(d.effects)}`);
    }
  } else {
    lines.push('Datasets: none');
  }
  if (gov.denials.length > 0) {
    const last = gov.denials[gov.denials.length - 1];
    const what = last.dataset ?? last.target;
    lines.push(
      `Denied reads: ${gov.denials.length} (latest: ${what} — ${firstLine(last.message)})`
    );
  }
  lines.push('Click for details and to declare a purpose.');
  return lines.join('\n');
}

export const NO_KERNEL_TEXT = 'Not governed (no kernel)';
export const UNGOVERNED_TEXT = 'Not governed';
export const UNGOVERNED_MESSAGE =
  "This kernel is not governed: jupyter_guard's kernel guard is not loaded in it " +
  '(it is not an IPython kernel, or the guard was unloaded), so its reads are neither checked nor audited.';

/** The view of a state. */
export function indicatorView(state: IndicatorState): IIndicatorView {
  switch (state.kind) {
    case 'loading':
      return {
        label: 'none',
        rank: null,
        text: 'Governance…',
        title: 'Loading the data governance of this kernel',
        state: 'loading'
      };
    case 'nokernel':
      return {
        label: 'none',
        rank: null,
        text: NO_KERNEL_TEXT,
        title: 'No kernel: nothing has been read. Start a kernel to read data.',
        state: 'nokernel'
      };
    case 'unavailable':
      return {
        label: 'none',
        rank: null,
        text: 'Governance unavailable',
        title: `The data governance of this kernel is unavailable: ${state.reason}`,
        state: 'unavailable'
      };
    case 'governance': {
      const gov = state.governance;
      if (!gov.guarded) {
        return {
          label: 'none',
          rank: null,
          text: UNGOVERNED_TEXT,
          title: UNGOVERNED_MESSAGE,
          state: 'ungoverned'
        };
      }
      return {
        label: gov.highest?.label ?? 'none',
        rank: gov.highest ? gov.highest.rank : null,
        text: indicatorText(gov),
        title: indicatorTitle(gov),
        state: 'governed'
      };
    }
  }
}

// ---------------------------------------------------------------------------
// Refresh coalescing
// ---------------------------------------------------------------------------

/**
 * Runs `run` at most once per `delay` ms however often `schedule` is called,
 * and never twice at once: a call while it runs asks for one more run after.
 */
export class RefreshScheduler {
  constructor(run: () => Promise<void>, delay: number) {
    this._run = run;
    this._delay = delay;
  }

  /** A run is waiting for its delay. */
  get scheduled(): boolean {
    return this._timer !== null;
  }

  /** A run is in flight. */
  get running(): boolean {
    return this._running !== null;
  }

  /** Ask for a run after the delay (joins an already scheduled one). */
  schedule(): void {
    if (this._disposed || this._timer !== null) {
      return;
    }
    this._timer = setTimeout(() => {
      this._timer = null;
      void this.flush();
    }, this._delay);
  }

  /** Run now, or, if a run is in flight, once more after it. */
  flush(): Promise<void> {
    if (this._disposed) {
      return Promise.resolve();
    }
    if (this._running) {
      this._again = true;
      return this._running;
    }
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    this._running = this._run()
      .catch(() => undefined)
      .finally(() => {
        this._running = null;
        if (this._again) {
          this._again = false;
          this.schedule();
        }
      });
    return this._running;
  }

  dispose(): void {
    this._disposed = true;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _run: () => Promise<void>;
  private _delay: number;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _running: Promise<void> | null = null;
  private _again = false;
  private _disposed = false;
}

// ---------------------------------------------------------------------------
// The toolbar item
// ---------------------------------------------------------------------------

/** The parts of ISessionContext used here (structural, so tests can fake it). */
export interface ISessionContextLike {
  readonly session: { readonly kernel: { readonly id: string } | null } | null;
  readonly kernelChanged: ISignal<any, any>;
  readonly statusChanged: ISignal<any, string>;
}

export class GovernanceIndicator extends Widget {
  constructor(options: GovernanceIndicator.IOptions) {
    super({ node: document.createElement('button') });
    this._sessionContext = options.sessionContext;
    this._request = options.request;
    this._notebook = options.notebook;
    this._events = options.events ?? null;
    this._executed = options.executed ?? null;
    this._onClick = options.onClick ?? null;
    this.addClass(INDICATOR_CLASS);
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    this._labelNode = document.createElement('span');
    this._labelNode.className = 'jp-guard-indicator-label';
    this._textNode = document.createElement('span');
    this._textNode.className = 'jp-guard-indicator-text';
    button.append(this._labelNode, this._textNode);
    button.addEventListener('click', this._handleClick);

    this._scheduler = new RefreshScheduler(
      () => this._fetch(),
      options.delay ?? 300
    );
    this._kernelId = this._currentKernelId();
    this._sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    this._sessionContext.statusChanged.connect(this._onStatusChanged, this);
    this._events?.connect(this._onEvent, this);
    this._executed?.connect(this._onExecuted, this);
    this._setState(this._kernelId ? { kind: 'loading' } : { kind: 'nokernel' });
    this.refresh();
  }

  /** Emits the governance each time a new one is shown (the dialog follows it). */
  get changed(): ISignal<this, IndicatorState> {
    return this._changed;
  }

  get state(): IndicatorState {
    return this._state;
  }

  /** The governance shown, or null. */
  get governance(): IKernelGovernance | null {
    return this._state.kind === 'governance' ? this._state.governance : null;
  }

  /** The kernel the indicator follows, or null. */
  get kernelId(): string | null {
    return this._kernelId;
  }

  /** Ask for a refresh soon (coalesced with any other ask). */
  refresh(): void {
    this._scheduler.schedule();
  }

  /** Refresh now (opening the dialog); joins a request in flight. */
  refreshNow(): Promise<void> {
    return this._scheduler.flush();
  }

  /** Declare (or, with null, withdraw) the kernel's purpose; rejects with the server's refusal. */
  async setPurpose(purpose: string | null): Promise<IKernelGovernance> {
    const id = this._kernelId;
    if (!id) {
      throw new Error('This notebook has no kernel.');
    }
    const gov = await this._request<IKernelGovernance>(
      `kernels/${encodeURIComponent(id)}/purpose`,
      postJSON({ purpose })
    );
    if (id === this._kernelId) {
      this._accept(gov);
    }
    return gov;
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._scheduler.dispose();
    this.node.removeEventListener('click', this._handleClick);
    Signal.clearData(this);
    this._sessionContext.kernelChanged.disconnect(this._onKernelChanged, this);
    this._sessionContext.statusChanged.disconnect(this._onStatusChanged, this);
    this._events?.disconnect(this._onEvent, this);
    this._executed?.disconnect(this._onExecuted, this);
    super.dispose();
  }

  private async _fetch(): Promise<void> {
    const id = this._currentKernelId();
    this._kernelId = id;
    if (!id) {
      this._setState({ kind: 'nokernel' });
      return;
    }
    let gov: IKernelGovernance;
    try {
      gov = await this._request<IKernelGovernance>(
        `kernels/${encodeURIComponent(id)}`
      );
    } catch (error) {
      if (id === this._kernelId) {
        this._setState({ kind: 'unavailable', reason: errorMessage(error) });
      }
      return;
    }
    // An answer about a kernel the notebook no longer uses is dropped.
    if (id === this._kernelId && !this.isDisposed) {
      this._accept(gov);
    }
  }

  /** Show a governance unless it is the one shown (same kernel, same version). */
  private _accept(gov: IKernelGovernance): void {
    const shown = this.governance;
    if (
      shown &&
      shown.kernel_id === gov.kernel_id &&
      shown.version === gov.version
    ) {
      return;
    }
    this._setState({ kind: 'governance', governance: gov });
  }

  private _setState(state: IndicatorState): void {
    this._state = state;
    if (this.isDisposed) {
      return;
    }
    const view = indicatorView(state);
    const node = this.node;
    node.dataset.guardLabel = view.label;
    node.dataset.guardState = view.state;
    node.title = view.title;
    node.setAttribute('aria-label', `Data governance: ${view.text}`);
    // The label as its own chip so it can carry the label colour; the text
    // stays whole in the node's textContent.
    const gov = this.governance;
    const label = view.state === 'governed' && gov?.highest ? gov.highest.label : '';
    this._labelNode.textContent = label;
    this._labelNode.className = 'jp-guard-indicator-label';
    if (label && view.rank !== null) {
      this._labelNode.classList.add(`jp-guard-label-rank-${paletteIndex(view.rank)}`);
    }
    this._textNode.textContent = label ? view.text.slice(label.length) : view.text;
    this.toggleClass('jp-mod-governed', view.state === 'governed');
    this._changed.emit(state);
  }

  private _currentKernelId(): string | null {
    return this._sessionContext.session?.kernel?.id ?? null;
  }

  private _onKernelChanged(): void {
    const id = this._currentKernelId();
    if (id !== this._kernelId) {
      this._kernelId = id;
      this._setState(id ? { kind: 'loading' } : { kind: 'nokernel' });
    }
    this.refresh();
  }

  private _onStatusChanged(_: unknown, status: string): void {
    // A restart keeps the kernel id but starts a new governance record:
    // refresh once the restarted kernel is idle.
    if (status === 'restarting' || status === 'autorestarting' || status === 'starting') {
      this._restarting = true;
    } else if (status === 'idle' && this._restarting) {
      this._restarting = false;
      this.refresh();
    } else if (status === 'dead') {
      this.refresh();
    }
  }

  private _onEvent(_: unknown, emission: EventEmission): void {
    if (
      emission.schema_id === AUDIT_EVENT_SCHEMA_ID &&
      this._kernelId !== null &&
      emission.kernel_id === this._kernelId
    ) {
      this.refresh();
    }
  }

  private _onExecuted(_: unknown, args: { notebook: unknown }): void {
    if (args.notebook === this._notebook) {
      this.refresh();
    }
  }

  private _handleClick = (): void => {
    this._onClick?.();
  };

  private _sessionContext: ISessionContextLike;
  private _request: GuardRequest;
  private _notebook: unknown;
  private _events: ISignal<any, EventEmission> | null;
  private _executed: ISignal<any, { notebook: unknown }> | null;
  private _onClick: (() => void) | null;
  private _labelNode: HTMLSpanElement;
  private _textNode: HTMLSpanElement;
  private _scheduler: RefreshScheduler;
  private _kernelId: string | null;
  private _restarting = false;
  private _state: IndicatorState = { kind: 'loading' };
  private _changed = new Signal<this, IndicatorState>(this);
}

export namespace GovernanceIndicator {
  export interface IOptions {
    sessionContext: ISessionContextLike;
    request: GuardRequest;
    /** The panel's notebook (to pick its executions out of `executed`). */
    notebook?: unknown;
    /** `app.serviceManager.events.stream`. */
    events?: ISignal<any, EventEmission> | null;
    /** `NotebookActions.executed`. */
    executed?: ISignal<any, { notebook: unknown }> | null;
    /** Milliseconds over which refresh triggers are coalesced (default 300). */
    delay?: number;
    onClick?: () => void;
  }
}

// ---------------------------------------------------------------------------
// The dialog
// ---------------------------------------------------------------------------


/** `dataset (label): message`, for the denials list. */
export function denialLine(denial: IKernelDenial): string {
  const what = denial.dataset
    ? `${denial.dataset}${denial.label ? ` (${denial.label})` : ''}`
    : denial.target;
  return `${what}: ${firstLine(denial.message)}`;
}

/** The options of the purpose picker: '' (none) first, then the purposes. */
export function purposeOptions(gov: IKernelGovernance): { value: string; text: string }[] {
  const purposes = [...gov.purposes];
  if (gov.purpose && !purposes.includes(gov.purpose)) {
    purposes.push(gov.purpose); // keep the current one selectable
  }
  return [
    { value: '', text: 'No purpose declared' },
    ...purposes.map(p => ({ value: p, text: p }))
  ];
}

/**
 * The body of the governance dialog (`.jp-guard-governance`): datasets, recent
 * denials and the purpose picker. Follows the indicator's changes.
 */
export class GovernanceView extends Widget {
  constructor(options: GovernanceView.IOptions) {
    super();
    this._indicator = options.indicator;
    this._onRequestAccess = options.onRequestAccess ?? null;
    this.addClass('jp-guard-governance');
    this._indicator.changed.connect(this._render, this);
    this._render();
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._indicator.changed.disconnect(this._render, this);
    super.dispose();
  }

  /** The last error shown (e.g. the server refused the purpose). */
  get error(): string {
    return this._error;
  }

  private _render(): void {
    const node = this.node;
    node.textContent = '';
    const state = this._indicator.state;
    const errorNode = el('div', 'jp-guard-governance-error');
    errorNode.setAttribute('role', 'alert');
    errorNode.textContent = this._error;
    errorNode.hidden = !this._error;

    if (state.kind !== 'governance') {
      node.append(
        el('p', 'jp-guard-governance-summary', indicatorView(state).title),
        errorNode
      );
      return;
    }
    const gov = state.governance;
    if (!gov.guarded) {
      node.append(el('p', 'jp-guard-governance-summary', UNGOVERNED_MESSAGE), errorNode);
      return;
    }
    node.append(
      el(
        'p',
        'jp-guard-governance-summary',
        gov.highest
          ? `This kernel has read data labelled up to ${gov.highest.label}.`
          : 'This kernel has read no governed data yet.'
      )
    );

    // Purpose picker.
    const purposeRow = el('div', 'jp-guard-governance-purpose');
    const selectId = `jp-guard-purpose-${gov.kernel_id}`;
    const label = el('label', undefined, 'Purpose');
    label.htmlFor = selectId;
    const select = el('select', 'jp-guard-purpose-select jp-mod-styled');
    select.id = selectId;
    for (const option of purposeOptions(gov)) {
      const opt = el('option', undefined, option.text);
      opt.value = option.value;
      select.appendChild(opt);
    }
    select.value = gov.purpose ?? '';
    select.disabled = this._busy;
    select.addEventListener('change', () => {
      void this._changePurpose(select, gov.purpose ?? '');
    });
    purposeRow.append(
      label,
      select,
      el(
        'span',
        'jp-guard-governance-hint',
        'Some data may only be read for a declared purpose; it is recorded with every read.'
      )
    );
    node.append(purposeRow, errorNode);

    // Datasets read.
    node.append(el('h3', undefined, 'Datasets'));
    if (gov.datasets.length === 0) {
      node.append(el('p', 'jp-guard-governance-empty', 'No governed data read yet.'));
    } else {
      const list = el('ul', 'jp-guard-governance-datasets');
      for (const d of gov.datasets) {
        const item = el('li', 'jp-guard-governance-dataset');
        item.dataset.dataset = d.dataset;
        item.append(
          el('span', 'jp-guard-governance-name', d.dataset),
          labelOnlyBadge(d.label, d.rank),
          el('span', 'jp-guard-governance-effects', formatEffects(d.effects))
        );
        list.appendChild(item);
      }
      node.append(list);
    }

    // Recent denials, newest first.
    if (gov.denials.length > 0) {
      node.append(el('h3', undefined, 'Denied reads'));
      const list = el('ul', 'jp-guard-governance-denials');
      for (const denial of [...gov.denials].reverse().slice(0, 10)) {
        const item = el('li', 'jp-guard-governance-denial');
        if (denial.dataset) {
          item.dataset.dataset = denial.dataset;
        }
        item.append(el('span', 'jp-guard-governance-denial-text', denialLine(denial)));
        item.title = [denial.message, ...denial.reasons].join('\n');
        const dataset = denial.dataset;
        if (dataset && this._onRequestAccess) {
          const button = el('button', 'jp-guard-request-access jp-guard-button', 'Request access');
          button.type = 'button';
          button.addEventListener('click', () => this._onRequestAccess?.(dataset, gov));
          item.append(button);
        }
        list.appendChild(item);
      }
      node.append(list);
    }
  }

  private async _changePurpose(select: HTMLSelectElement, previous: string): Promise<void> {
    const value = select.value;
    this._busy = true;
    select.disabled = true;
    try {
      await this._indicator.setPurpose(value || null);
      this._error = '';
    } catch (error) {
      this._error = `The purpose was not changed: ${errorMessage(error)}`;
      select.value = previous;
    } finally {
      this._busy = false;
    }
    if (!this.isDisposed) {
      this._render();
    }
  }

  private _indicator: GovernanceIndicator;
  private _onRequestAccess: ((dataset: string, gov: IKernelGovernance) => void) | null;
  private _error = '';
  private _busy = false;
}

export namespace GovernanceView {
  export interface IOptions {
    indicator: GovernanceIndicator;
    onRequestAccess?: (dataset: string, gov: IKernelGovernance) => void;
  }
}

/** Open the governance dialog of an indicator (refreshing it first). */
export async function openGovernanceDialog(
  indicator: GovernanceIndicator,
  options: { onRequestAccess?: (dataset: string, gov: IKernelGovernance) => void } = {}
): Promise<void> {
  const body = new GovernanceView({ indicator, onRequestAccess: options.onRequestAccess });
  void indicator.refreshNow();
  try {
    await showDialog({
      title: 'Data governance of this notebook',
      body,
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
  } finally {
    body.dispose();
  }
}
