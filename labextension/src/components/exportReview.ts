/**
 * Export review: before JupyterLab downloads or exports a notebook, show
 * what the server's export gate will do with it (POST export/preview, no
 * side effects) and, when the policy asks for one, collect a justification.
 *
 * The server's gates on /files and /nbconvert decide either way; this review
 * only tells the user beforehand and carries the justification.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import type { CommandRegistry } from '@lumino/commands';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { xsrfFromCookie } from './auditQuery';
import { errorReason } from './statusWidget';
import { IExportPreview, REVIEWED_COMMANDS } from '../tokens';
import { el } from './dom';
import { knownLabel, labelOnlyBadge } from './labelBadge';

/** A justification shorter than this does not enable the accept button. */
export const MIN_JUSTIFICATION = 10;

/** Format sent to export/preview for a plain download of the .ipynb. */
export const DOWNLOAD_FORMAT = 'ipynb';

export type ReviewAction = 'download' | 'export';

/** One notebook whose download or export is reviewed. */
export interface IReviewTarget {
  /** The path as JupyterLab knows it (may carry a drive prefix). */
  path: string;
  action: ReviewAction;
  /** nbconvert format for exports; DOWNLOAD_FORMAT for downloads. */
  format: string;
}

/** What a reviewed command is about. */
export interface IResolvedReview {
  command: string;
  targets: IReviewTarget[];
  /** filebrowser:download: selected files that are not notebooks (not reviewed). */
  others: string[];
}

/** An item of the file browser's selection. */
export interface ISelectedItem {
  path: string;
  type: string;
}

/** Where the targets of the reviewed commands come from. */
export interface IReviewEnv {
  /** docmanager:download: the path of the current widget's document. */
  currentDocumentPath(): string | null;
  /** filebrowser:download: the default file browser's selected items. */
  selectedItems(): ISelectedItem[];
  /** notebook:export-to-format: the current notebook's path. */
  currentNotebookPath(args: ReadonlyPartialJSONObject): string | null;
}

/** Whether a path names a notebook. */
export function isNotebookPath(path: string | null | undefined): path is string {
  return typeof path === 'string' && /\.ipynb$/i.test(path);
}

/** Whether a command id is one the review intercepts. */
export function isReviewedCommand(id: string): boolean {
  return (REVIEWED_COMMANDS as readonly string[]).includes(id);
}

/**
 * The notebooks a reviewed command would download or export, or null when
 * the command concerns no notebook (it then runs untouched).
 */
export function resolveReview(
  id: string,
  args: ReadonlyPartialJSONObject,
  env: IReviewEnv
): IResolvedReview | null {
  switch (id) {
    case 'docmanager:download': {
      const path = env.currentDocumentPath();
      return isNotebookPath(path)
        ? {
            command: id,
            targets: [{ path, action: 'download', format: DOWNLOAD_FORMAT }],
            others: []
          }
        : null;
    }
    case 'filebrowser:download': {
      // As DirListing.download(): directories are not downloaded.
      const files = env.selectedItems().filter(item => item.type !== 'directory');
      const notebooks = files.filter(item => isNotebookPath(item.path));
      if (notebooks.length === 0) {
        return null;
      }
      return {
        command: id,
        targets: notebooks.map(item => ({
          path: item.path,
          action: 'download' as const,
          format: DOWNLOAD_FORMAT
        })),
        others: files.filter(item => !isNotebookPath(item.path)).map(item => item.path)
      };
    }
    case 'notebook:export-to-format': {
      const format = args['format'];
      if (typeof format !== 'string' || !format) {
        return null;
      }
      const path = env.currentNotebookPath(args);
      return isNotebookPath(path)
        ? { command: id, targets: [{ path, action: 'export', format }], others: [] }
        : null;
    }
    default:
      return null;
  }
}

/** The `POST export/preview` body of a target (purpose left to the server). */
export function previewRequest(
  target: IReviewTarget,
  localPath: string = target.path
): { path: string; format: string; action: ReviewAction } {
  return { path: localPath, format: target.format, action: target.action };
}

function appendQuery(url: string, params: [string, string][]): string {
  const search = new URLSearchParams();
  for (const [key, value] of params) {
    search.append(key, value);
  }
  return `${url}${url.includes('?') ? '&' : '?'}${search.toString()}`;
}

function encodePath(path: string): string {
  return path
    .split('/')
    .filter(part => part.length > 0)
    .map(encodeURIComponent)
    .join('/');
}

/**
 * `<baseUrl>/files/<path>?download=1&justification=…` — the download the
 * gate on /files sees with its justification. `_xsrf` is appended from the
 * cookie as JupyterLab's Drive.getDownloadUrl does (jupyter_server checks
 * it on cookie-authenticated GETs of /files).
 */
export function filesDownloadUrl(
  baseUrl: string,
  path: string,
  justification: string,
  cookie = ''
): string {
  const url = URLExt.join(baseUrl, 'files', encodePath(path));
  return withJustification(url, '1', justification, cookie);
}

/**
 * `<baseUrl>/nbconvert/<format>/<path>?download=true&justification=…`, the
 * URL NbConvertManager.exportAs opens, plus the justification.
 */
export function nbconvertExportUrl(
  baseUrl: string,
  format: string,
  path: string,
  justification: string,
  cookie = ''
): string {
  const url = URLExt.join(baseUrl, 'nbconvert', encodeURIComponent(format), encodePath(path));
  return withJustification(url, 'true', justification, cookie);
}

/** `url?download=…&justification=…`, plus `_xsrf` from the cookie as Drive.getDownloadUrl adds it. */
function withJustification(
  url: string,
  download: string,
  justification: string,
  cookie: string
): string {
  const params: [string, string][] = [
    ['download', download],
    ['justification', justification]
  ];
  const xsrf = xsrfFromCookie(cookie);
  if (xsrf) {
    params.push(['_xsrf', xsrf]);
  }
  return appendQuery(url, params);
}

/** Open a download as DocumentContext.download / FileBrowserModel.download do. */
export function clickDownload(url: string): void {
  const element = document.createElement('a');
  element.href = url;
  element.download = '';
  document.body.appendChild(element);
  element.click();
  document.body.removeChild(element);
}

/** Open an export as NbConvertManager.exportAs does (JupyterLab 4.6). */
export function openExport(url: string): void {
  window.open(url, '_blank', 'noopener');
}

/** What the dialog says will happen. */
export function effectText(preview: IExportPreview): string {
  const verb = preview.action === 'download' ? 'downloaded' : 'exported';
  switch (preview.effect) {
    case 'allow':
      return `Will be ${verb} as is`;
    case 'redact':
      return `Will be ${verb} redacted`;
    case 'justify':
      return `Will be ${verb} with your justification`;
    default:
      return preview.needs_justification
        ? 'Refused unless you give a justification'
        : 'Refused';
  }
}

/** Refused with no way through (no justification route): only Close. */
export function isFinalRefusal(preview: IExportPreview): boolean {
  return !preview.permitted && !preview.needs_justification;
}

/** Whom to ask, from the decisions (unique, refused ones first). */
export function askList(preview: IExportPreview): string[] {
  const decisions = [...(preview.decisions ?? [])].sort(
    (a, b) => Number(a.permitted) - Number(b.permitted)
  );
  const out: string[] = [];
  for (const d of decisions) {
    if (d.ask && !out.includes(d.ask)) {
      out.push(d.ask);
    }
  }
  return out;
}


function section(parent: HTMLElement, title: string): HTMLElement {
  const box = el('div', 'jp-guard-export-section');
  box.appendChild(el('h4', 'jp-guard-export-heading', title));
  parent.appendChild(box);
  return box;
}

/**
 * The dialog body: sensitivity, datasets, PII, effect, redactions, blocked
 * cells, the policy's message, whom to ask, and the justification field.
 * `getValue()` is the justification (trimmed).
 */
export class ExportReviewBody extends Widget {
  constructor(preview: IExportPreview) {
    super();
    this.preview = preview;
    this.addClass('jp-guard-export-review');
    const node = this.node;

    const path = el('p', 'jp-guard-export-path', preview.path);
    node.appendChild(path);

    const effect = el('p', 'jp-guard-export-effect', effectText(preview));
    effect.dataset.effect = preview.effect;
    node.appendChild(effect);

    const sens = section(node, 'Sensitivity');
    const label = el('span', 'jp-guard-export-label');
    label.dataset.guardLabel = preview.label ?? 'none';
    if (preview.label) {
      // the same badge as in the file browser (colour from the catalog's labels when known)
      const rank = knownLabel(preview.label)?.rank ?? 0;
      label.appendChild(labelOnlyBadge(preview.label, rank));
    } else {
      label.textContent = 'Not governed';
    }
    sens.appendChild(label);

    const read = section(node, 'Datasets read');
    const datasets = el('ul', 'jp-guard-export-datasets');
    for (const d of preview.datasets ?? []) {
      const item = el('li', 'jp-guard-export-dataset', `${d.dataset} (${d.label})`);
      item.dataset.dataset = d.dataset;
      item.dataset.guardLabel = d.label;
      datasets.appendChild(item);
    }
    if ((preview.datasets ?? []).length === 0) {
      datasets.appendChild(el('li', 'jp-guard-export-none', 'None recorded'));
    }
    read.appendChild(datasets);

    const pii = section(node, 'PII found in outputs');
    const piiList = el('ul', 'jp-guard-export-pii');
    const piiEntries = Object.entries(preview.pii_in_outputs ?? {});
    for (const [entity, count] of piiEntries) {
      const item = el('li', 'jp-guard-export-pii-entity', `${entity}: ${count}`);
      item.dataset.entity = entity;
      piiList.appendChild(item);
    }
    if (piiEntries.length === 0) {
      piiList.appendChild(el('li', 'jp-guard-export-none', 'None found'));
    }
    pii.appendChild(piiList);

    const redaction = preview.redaction;
    if (redaction) {
      const box = section(node, 'Redaction');
      const list = el('ul', 'jp-guard-export-redactions');
      for (const [entity, count] of Object.entries(redaction.entity_counts ?? {})) {
        const item = el('li', 'jp-guard-export-entity', `${entity}: ${count}`);
        item.dataset.entity = entity;
        list.appendChild(item);
      }
      const counts: [string, string, number][] = [
        ['outputs-removed', 'Outputs removed', redaction.outputs_removed],
        ['cells-blocked', 'Cells blocked', redaction.cells_blocked],
        ['secrets-masked', 'Secrets masked', redaction.secrets_masked]
      ];
      for (const [key, text, count] of counts) {
        const item = el('li', `jp-guard-export-${key}`, `${text}: ${count ?? 0}`);
        item.dataset.count = String(count ?? 0);
        list.appendChild(item);
      }
      box.appendChild(list);
    }

    const blocked = preview.blocked_cells ?? [];
    if (blocked.length > 0) {
      const box = section(node, 'Cells whose outputs are blocked');
      const list = el('ul', 'jp-guard-export-blocked');
      for (const cell of blocked) {
        const item = el('li', 'jp-guard-export-blocked-cell', cell);
        item.dataset.cellId = cell;
        list.appendChild(item);
      }
      box.appendChild(list);
    }

    if (preview.purpose) {
      // the server decided under the notebook session's declared purpose (or the request's)
      node.appendChild(
        el('p', 'jp-guard-export-purpose', `Decided under purpose: ${preview.purpose}`)
      );
    }
    if (preview.message) {
      node.appendChild(el('p', 'jp-guard-export-message', preview.message));
    }
    const ask = askList(preview);
    if (ask.length > 0) {
      node.appendChild(el('p', 'jp-guard-export-ask', `Ask: ${ask.join('; ')}`));
    }

    if (preview.needs_justification) {
      const wrapper = el('label', 'jp-guard-export-justification-label');
      wrapper.appendChild(
        el('span', undefined, `Justification (required, at least ${MIN_JUSTIFICATION} characters; recorded in the audit log)`)
      );
      this._textarea = el('textarea', 'jp-mod-styled jp-guard-export-justification');
      this._textarea.required = true;
      this._textarea.rows = 3;
      this._textarea.placeholder = 'Why do you need this?';
      this._textarea.addEventListener('input', this._sync);
      wrapper.appendChild(this._textarea);
      node.appendChild(wrapper);
    }
  }

  readonly preview: IExportPreview;

  /** The justification typed so far (trimmed), '' when none is asked. */
  getValue(): string {
    return this._textarea ? this._textarea.value.trim() : '';
  }

  /** Whether the accept button may be pressed. */
  get acceptEnabled(): boolean {
    return !this.preview.needs_justification || this.getValue().length >= MIN_JUSTIFICATION;
  }

  /** The button kept disabled until the justification is long enough. */
  bindAcceptButton(button: HTMLButtonElement | null): void {
    this._accept = button;
    this._sync();
  }

  protected override onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    // The Dialog has no API to disable a button: find ours in its footer.
    const dialog = this.node.closest('.jp-Dialog') ?? this.node.parentElement?.parentElement;
    const button = dialog?.querySelector<HTMLButtonElement>('button.jp-mod-accept') ?? null;
    this.bindAcceptButton(button);
  }

  private _sync = (): void => {
    if (this._accept) {
      this._accept.disabled = !this.acceptEnabled;
    }
  };

  private _textarea: HTMLTextAreaElement | null = null;
  private _accept: HTMLButtonElement | null = null;
}

/** The dialog title, e.g. `Review export: sales.ipynb as html`. */
export function reviewTitle(target: IReviewTarget): string {
  const name = target.path.split('/').pop() ?? target.path;
  return target.action === 'download'
    ? `Review download: ${name}`
    : `Review export: ${name} as ${target.format}`;
}

/** The outcome of reviewing one target. */
export type ReviewOutcome =
  | { kind: 'proceed' }
  | { kind: 'justified'; justification: string }
  | { kind: 'stop' };

/** What the reviewer needs from JupyterLab and the server. */
export interface IReviewerDeps {
  /** `POST export/preview`. */
  preview(body: { path: string; format: string; action: ReviewAction }): Promise<IExportPreview>;
  /** The server-relative path of a JupyterLab path (drops a drive prefix). */
  localPath(path: string): string;
  /** Base URL of the server. */
  baseUrl(): string;
  /** The page's cookie (for _xsrf). */
  cookie(): string;
  /** Download one file the way JupyterLab does (FileBrowserModel.download). */
  downloadPlain(path: string): Promise<void>;
  /** Save the notebook before an export if it has unsaved changes. */
  saveBeforeExport(path: string): Promise<void>;
  /** Open a URL as a download (default: clickDownload). */
  openDownload?(url: string): void;
  /** Open a URL as an export (default: openExport). */
  openExport?(url: string): void;
  /** showDialog (injected for tests). */
  showDialog?: typeof showDialog;
}

/** Reviews targets and performs what the user accepted. */
export class ExportReviewer {
  constructor(deps: IReviewerDeps) {
    this._deps = deps;
  }

  /** Review one target: preview, dialog, outcome. */
  async reviewOne(target: IReviewTarget): Promise<ReviewOutcome> {
    const show = this._deps.showDialog ?? showDialog;
    if (target.action === 'export') {
      try {
        await this._deps.saveBeforeExport(target.path);
      } catch (error) {
        console.warn('jupyter-guard: could not save before the export review', error);
      }
    }
    let preview: IExportPreview;
    try {
      preview = await this._deps.preview(previewRequest(target, this._deps.localPath(target.path)));
    } catch (error) {
      return this._previewFailed(target, error);
    }
    const body = new ExportReviewBody(preview);
    const verb = target.action === 'download' ? 'Download' : 'Export';
    const buttons = isFinalRefusal(preview)
      ? [Dialog.cancelButton({ label: 'Close' })]
      : [
          Dialog.cancelButton({ label: 'Cancel' }),
          preview.permitted
            ? Dialog.okButton({ label: verb })
            : Dialog.warnButton({ label: verb })
        ];
    const result = await show<string>({
      title: reviewTitle(target),
      body,
      buttons,
      focusNodeSelector: preview.needs_justification ? 'textarea' : undefined,
      hasClose: true
    });
    const justification =
      typeof result.value === 'string' ? result.value.trim() : body.getValue();
    body.dispose();
    if (!result.button.accept || isFinalRefusal(preview)) {
      return { kind: 'stop' };
    }
    if (preview.needs_justification) {
      // The button is disabled until it is long enough; Enter could still resolve.
      return justification.length >= MIN_JUSTIFICATION
        ? { kind: 'justified', justification }
        : { kind: 'stop' };
    }
    return { kind: 'proceed' };
  }

  /**
   * Review a resolved command and perform what was accepted.
   * `runOriginal` runs the command as JupyterLab defines it.
   */
  async run(resolved: IResolvedReview, runOriginal: () => Promise<unknown>): Promise<unknown> {
    const outcomes: ReviewOutcome[] = [];
    for (const target of resolved.targets) {
      outcomes.push(await this.reviewOne(target));
    }
    const allProceed = outcomes.every(o => o.kind === 'proceed');
    if (allProceed) {
      return runOriginal();
    }
    if (resolved.command !== 'filebrowser:download') {
      const outcome = outcomes[0];
      if (outcome.kind === 'justified') {
        await this._perform(resolved.targets[0], outcome.justification);
      }
      return undefined;
    }
    // filebrowser:download with a mixed outcome: download item by item.
    const downloads: Promise<void>[] = resolved.others.map(path =>
      this._deps.downloadPlain(path)
    );
    resolved.targets.forEach((target, i) => {
      const outcome = outcomes[i];
      if (outcome.kind === 'proceed') {
        downloads.push(this._deps.downloadPlain(target.path));
      } else if (outcome.kind === 'justified') {
        downloads.push(this._perform(target, outcome.justification));
      }
    });
    await Promise.all(downloads);
    return undefined;
  }

  /** Download or export with the justification, as JupyterLab opens those URLs. */
  private async _perform(target: IReviewTarget, justification: string): Promise<void> {
    const path = this._deps.localPath(target.path);
    if (target.action === 'download') {
      const url = filesDownloadUrl(this._deps.baseUrl(), path, justification, this._deps.cookie());
      (this._deps.openDownload ?? clickDownload)(url);
    } else {
      const url = nbconvertExportUrl(
        this._deps.baseUrl(),
        target.format,
        path,
        justification,
        this._deps.cookie()
      );
      (this._deps.openExport ?? openExport)(url);
    }
  }

  private async _previewFailed(target: IReviewTarget, error: unknown): Promise<ReviewOutcome> {
    const show = this._deps.showDialog ?? showDialog;
    const verb = target.action === 'download' ? 'Download' : 'Export';
    const body = el('div', 'jp-guard-export-review-error');
    body.appendChild(
      el('p', undefined, `The export review could not check ${target.path}: ${errorReason(error)}`)
    );
    body.appendChild(
      el(
        'p',
        undefined,
        `Nothing has been ${target.action === 'download' ? 'downloaded' : 'exported'}. ` +
          'The server applies its export policy to the request itself either way: ' +
          'if you go on, it may still redact or refuse it.'
      )
    );
    const result = await show({
      title: 'Export review unavailable',
      body: new Widget({ node: body }),
      buttons: [
        Dialog.cancelButton({ label: 'Cancel' }),
        Dialog.warnButton({ label: `${verb} anyway` })
      ]
    });
    return result.button.accept ? { kind: 'proceed' } : { kind: 'stop' };
  }

  private _deps: IReviewerDeps;
}

/** Decides, synchronously, whether a call is reviewed: a promise, or null to pass through. */
export type ExecuteInterceptor = (
  id: string,
  args: ReadonlyPartialJSONObject,
  runOriginal: () => Promise<unknown>
) => Promise<unknown> | null;

/**
 * Wrap `commands.execute` once.
 *
 * JupyterLab has no pre-execute hook (CommandRegistry.commandExecuted fires
 * after the command ran), so the reviewed commands are intercepted by
 * replacing `execute` on this registry instance. Menus, the palette,
 * context menus and key bindings all call `commands.execute`, so they all
 * pass here. The original is kept bound to the registry; every call that is
 * not reviewed goes to it with its arguments untouched. While the original
 * runs after a review, a re-entrancy flag makes any nested execute of the
 * same commands pass straight through, so nothing is reviewed twice.
 *
 * Returns a function that restores the original.
 */
export function wrapExecute(
  commands: CommandRegistry,
  intercept: ExecuteInterceptor
): () => void {
  const registry = commands as CommandRegistry & { __guardReviewWrapped?: boolean };
  if (registry.__guardReviewWrapped) {
    return () => undefined;
  }
  const hadOwn = Object.prototype.hasOwnProperty.call(commands, 'execute');
  const previous = commands.execute;
  const original = previous.bind(commands);
  let bypass = 0;

  const runOriginal = (id: string, args?: ReadonlyPartialJSONObject) => {
    bypass++;
    try {
      // CommandRegistry.execute calls the command's execute synchronously;
      // the flag covers that call and anything it executes synchronously.
      return original(id, args);
    } finally {
      bypass--;
    }
  };

  const wrapped = function (
    this: unknown,
    id: string,
    args?: ReadonlyPartialJSONObject
  ): Promise<any> {
    if (bypass > 0 || !isReviewedCommand(id)) {
      // eslint-disable-next-line prefer-rest-params
      return original.apply(undefined, arguments as unknown as [string, ReadonlyPartialJSONObject?]);
    }
    let review: Promise<unknown> | null;
    try {
      review = intercept(id, args ?? {}, () => runOriginal(id, args));
    } catch (error) {
      console.error('jupyter-guard: export review failed; the server gates still apply', error);
      review = null;
    }
    return review === null ? runOriginal(id, args) : review;
  };

  commands.execute = wrapped as CommandRegistry['execute'];
  registry.__guardReviewWrapped = true;
  return () => {
    if (commands.execute === (wrapped as unknown)) {
      if (hadOwn) {
        commands.execute = previous;
      } else {
        delete (commands as { execute?: unknown }).execute; // back to the prototype's
      }
    }
    registry.__guardReviewWrapped = false;
  };
}
