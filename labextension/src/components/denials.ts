/**
 * Denied reads: a notification when a cell raises GuardDenied, and the
 * "Request access" dialog.
 *
 * The kernel's error only has the message text; the server knows the
 * structured denial (dataset, label, reasons, whom to ask), keyed by the
 * execute request's msg_id, so on a GuardDenied error we ask
 * `GET kernels/<id>` and pick the denial of that msg_id.
 */

import {
  Dialog,
  Notification,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import type { IDisposable } from '@lumino/disposable';
import type { ISignal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { GuardRequest, errorMessage, postJSON, queryString } from '../handler';
import { formatContact } from './labelBadge';
import {
  CommandIDs,
  IAccessRequestReply,
  ICatalogResponse,
  IContact,
  IKernelDenial,
  IKernelGovernance
} from '../tokens';

/** Toasts cut longer messages (Notification docs): keep the essentials within it. */
export const MAX_NOTIFICATION_LENGTH = 140;

// ---------------------------------------------------------------------------
// Pure logic
// ---------------------------------------------------------------------------

/** The parts of an iopub message used here. */
export interface IIOPubLike {
  header: { msg_type: string };
  parent_header: { msg_id?: string } | Record<string, never>;
  content: unknown;
}

/** A GuardDenied error of a cell: the execute request's msg_id and the error text. */
export interface IGuardDeniedError {
  parentMsgId: string;
  evalue: string;
}

/** The GuardDenied error in an iopub message, or null for anything else. */
export function guardDeniedError(msg: IIOPubLike): IGuardDeniedError | null {
  if (msg?.header?.msg_type !== 'error') {
    return null;
  }
  const content = (msg.content ?? {}) as { ename?: unknown; evalue?: unknown };
  if (content.ename !== 'GuardDenied') {
    return null;
  }
  const parent = (msg.parent_header ?? {}) as { msg_id?: string };
  return {
    parentMsgId: parent.msg_id ?? '',
    evalue: typeof content.evalue === 'string' ? content.evalue : ''
  };
}

/** What a denial notification says and offers. */
export interface IDenialNotice {
  /** Dedupe key: msg_id + dataset. */
  key: string;
  msgId: string;
  dataset: string | null;
  label: string | null;
  target: string | null;
  /** The full who/what/why/who-to-ask message. */
  message: string;
  reasons: string[];
  ask: string | null;
  /** How the denial was found: by msg_id, the newest one, or only the error text. */
  source: 'msg_id' | 'newest' | 'evalue';
}

/** msg_id + dataset: one denial is shown once, however many panels see its error. */
export function denialKey(msgId: string | null, dataset: string | null): string {
  return `${msgId ?? ''}\u0000${dataset ?? ''}`;
}

function noticeOf(
  denial: IKernelDenial,
  msgId: string,
  source: 'msg_id' | 'newest'
): IDenialNotice {
  const id = denial.msg_id ?? msgId;
  return {
    key: denialKey(id, denial.dataset),
    msgId: id,
    dataset: denial.dataset,
    label: denial.label,
    target: denial.target,
    message: denial.message,
    reasons: denial.reasons ?? [],
    ask: denial.ask,
    source
  };
}

/**
 * The denial behind an error: the one with the error's msg_id (newest if
 * several), else the newest not yet shown, else only the error's text.
 */
export function matchDenial(
  denials: readonly IKernelDenial[],
  error: IGuardDeniedError,
  shown: ReadonlySet<string> = new Set()
): IDenialNotice {
  const byId = denials.filter(d => d.msg_id && d.msg_id === error.parentMsgId);
  if (byId.length > 0) {
    return noticeOf(byId[byId.length - 1], error.parentMsgId, 'msg_id');
  }
  const newest = denials[denials.length - 1];
  if (newest) {
    const notice = noticeOf(newest, error.parentMsgId, 'newest');
    if (!shown.has(notice.key)) {
      return notice;
    }
  }
  return {
    key: denialKey(error.parentMsgId, null),
    msgId: error.parentMsgId,
    dataset: null,
    label: null,
    target: null,
    message: error.evalue || 'The read was denied.',
    reasons: [],
    ask: null,
    source: 'evalue'
  };
}

function sentence(text: string): string {
  const trimmed = text.trim().replace(/[.\s]+$/, '');
  return trimmed ? `${trimmed}.` : '';
}

/**
 * `Read denied: patients (restricted). <why>. Ask <ask>.` The why (the most
 * specific reason: the last) is shortened so the toast keeps what and whom to
 * ask; the full text is behind "Details".
 */
export function denialText(notice: IDenialNotice, max = MAX_NOTIFICATION_LENGTH): string {
  if (notice.source === 'evalue') {
    const text = `Read denied. ${notice.message.trim()}`;
    return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
  }
  const what = notice.dataset
    ? `${notice.dataset}${notice.label ? ` (${notice.label})` : ''}`
    : notice.target ?? 'data';
  const head = `Read denied: ${what}.`;
  const tail = notice.ask ? ` Ask ${notice.ask}.` : '';
  const reason = notice.reasons.length > 0
    ? notice.reasons[notice.reasons.length - 1]
    : notice.message;
  let why = sentence(reason);
  const room = max - head.length - tail.length - 1;
  if (why.length > room) {
    why = room >= 12 ? `${why.slice(0, room - 2).replace(/\s+$/, '')}….` : '';
  }
  return `${head}${why ? ` ${why}` : ''}${tail}`;
}

// ---------------------------------------------------------------------------
// Watching notebooks
// ---------------------------------------------------------------------------

/** The parts of ISessionContext used here. */
export interface IDenialSource {
  readonly session: { readonly kernel: { readonly id: string } | null } | null;
  readonly iopubMessage: ISignal<any, IIOPubLike>;
}

/** Runs commands (app.commands). */
export interface ICommandRunner {
  execute(id: string, args?: any): Promise<unknown>;
}

/**
 * Turns GuardDenied errors into notifications. One watcher for the whole
 * app: its memory of what was shown dedupes across panels sharing a kernel.
 */
export class DenialWatcher {
  constructor(options: DenialWatcher.IOptions) {
    this._request = options.request;
    this._commands = options.commands;
    this.enabled = options.enabled ?? true;
  }

  /** The notifyOnDenial setting. */
  enabled: boolean;

  /** Watch one notebook's session; dispose the result to stop. */
  watch(source: IDenialSource, notebook: () => string | null): IDisposable {
    const slot = (_: unknown, msg: IIOPubLike) => {
      const error = guardDeniedError(msg);
      if (error) {
        const kernelId = source.session?.kernel?.id ?? null;
        void this.handle(error, kernelId, notebook());
      }
    };
    source.iopubMessage.connect(slot);
    let disposed = false;
    return {
      get isDisposed() {
        return disposed;
      },
      dispose: () => {
        if (!disposed) {
          disposed = true;
          source.iopubMessage.disconnect(slot);
        }
      }
    };
  }

  /** Notify about one GuardDenied error (once); returns what was shown, or null. */
  async handle(
    error: IGuardDeniedError,
    kernelId: string | null,
    notebook: string | null
  ): Promise<IDenialNotice | null> {
    if (!this.enabled) {
      return null;
    }
    // Several panels on one kernel all see its error: handle it once.
    const errorKey = `${kernelId ?? ''}\u0000${error.parentMsgId}`;
    if (error.parentMsgId && this._errors.has(errorKey)) {
      return null;
    }
    this._errors.add(errorKey);
    let denials: IKernelDenial[] = [];
    if (kernelId) {
      try {
        const gov = await this._request<IKernelGovernance>(
          `kernels/${encodeURIComponent(kernelId)}`
        );
        denials = gov?.denials ?? [];
      } catch (reason) {
        // The error's own text still says who/what/why.
        console.warn('jupyter-guard: could not fetch the denial details', reason);
      }
    }
    const notice = matchDenial(denials, error, this._shown);
    if (this._shown.has(notice.key) || !this.enabled) {
      return null;
    }
    this._shown.add(notice.key);
    this._notify(notice, kernelId, notebook);
    return notice;
  }

  private _notify(
    notice: IDenialNotice,
    kernelId: string | null,
    notebook: string | null
  ): void {
    const actions: Notification.IAction[] = [];
    const dataset = notice.dataset;
    if (dataset) {
      actions.push({
        label: 'Request access',
        caption: `Ask the steward of ${dataset} for access`,
        callback: () => {
          void this._commands.execute(CommandIDs.requestAccess, {
            dataset,
            notebook,
            kernel_id: kernelId,
            ...(notice.ask ? { ask: notice.ask } : {})
          });
        }
      });
    }
    actions.push({
      label: 'Details',
      caption: 'Show the full message and the reasons',
      callback: event => {
        event.preventDefault(); // keep the toast: the details do not answer it
        void showDenialDetails(notice);
      }
    });
    Notification.error(denialText(notice), { autoClose: false, actions });
  }

  private _request: GuardRequest;
  private _commands: ICommandRunner;
  private _errors = new Set<string>();
  private _shown = new Set<string>();
}

export namespace DenialWatcher {
  export interface IOptions {
    request: GuardRequest;
    commands: ICommandRunner;
    /** The notifyOnDenial setting (default true). */
    enabled?: boolean;
  }
}

/** The body of the Details dialog (`.jp-guard-denial-details`). */
export function denialDetailsNode(notice: IDenialNotice): HTMLElement {
  const node = document.createElement('div');
  node.className = 'jp-guard-denial-details';
  const message = document.createElement('p');
  message.className = 'jp-guard-denial-message';
  message.textContent = notice.message;
  node.appendChild(message);
  if (notice.reasons.length > 0) {
    const heading = document.createElement('h3');
    heading.textContent = 'Reasons';
    const list = document.createElement('ul');
    list.className = 'jp-guard-denial-reasons';
    for (const reason of notice.reasons) {
      const item = document.createElement('li');
      item.textContent = reason;
      list.appendChild(item);
    }
    node.append(heading, list);
  }
  if (notice.ask) {
    const ask = document.createElement('p');
    ask.className = 'jp-guard-denial-ask';
    ask.textContent = `Whom to ask: ${notice.ask}`;
    node.appendChild(ask);
  }
  return node;
}

/** The Details dialog of a denial. */
export async function showDenialDetails(notice: IDenialNotice): Promise<void> {
  const what = notice.dataset ?? notice.target ?? 'data';
  await showDialog({
    title: `Read denied: ${what}`,
    body: new Widget({ node: denialDetailsNode(notice) }),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

// ---------------------------------------------------------------------------
// Request access
// ---------------------------------------------------------------------------

/** Arguments of CommandIDs.requestAccess. */
export interface IRequestAccessArgs {
  dataset: string;
  notebook?: string | null;
  kernel_id?: string | null;
  /** The action asked for (default: read, decided by the server). */
  action?: string;
  /** Whom to ask as a denial said it; shown if the catalog cannot tell. */
  ask?: string | null;
}

/** The steward of a dataset (or source) as the catalog lists it, or null. */
export async function lookupSteward(
  request: GuardRequest,
  dataset: string
): Promise<IContact | null> {
  try {
    const catalog = await request<ICatalogResponse>(`catalog${queryString({ q: dataset })}`);
    const found =
      catalog.datasets?.find(d => d.name === dataset) ??
      catalog.sources?.find(s => s.name === dataset);
    return found?.steward ?? null;
  } catch {
    return null; // the dialog then says "its steward"
  }
}

/**
 * The body of the request dialog: who gets the request and a required reason.
 * While the reason is empty the "Send request" button is disabled.
 */
export class RequestAccessBody extends Widget {
  constructor(options: {
    dataset: string;
    steward: IContact | string | null;
    reason?: string;
  }) {
    super();
    // The dialog's body carries the class, so `.jp-Dialog .jp-guard-request-dialog` finds it.
    this.addClass('jp-guard-request-dialog');
    this.addClass('jp-guard-request-body');
    const intro = document.createElement('p');
    intro.className = 'jp-guard-request-intro';
    const dataset = document.createElement('strong');
    dataset.className = 'jp-guard-request-dataset';
    dataset.textContent = options.dataset;
    const steward = document.createElement('span');
    steward.className = 'jp-guard-request-steward';
    steward.textContent =
      typeof options.steward === 'string'
        ? options.steward
        : options.steward
          ? formatContact(options.steward)
          : 'its steward';
    intro.append(
      'Your request for ',
      dataset,
      ' goes to ',
      steward,
      ' and is recorded in the audit log.'
    );
    const label = document.createElement('label');
    label.className = 'jp-guard-request-label';
    label.textContent = 'Why do you need this data? (required)';
    this._textarea = document.createElement('textarea');
    this._textarea.className = 'jp-guard-request-reason jp-mod-styled';
    this._textarea.required = true;
    this._textarea.rows = 4;
    this._textarea.setAttribute('aria-required', 'true');
    this._textarea.placeholder = 'The project, the purpose and what you need from it';
    this._textarea.value = options.reason ?? '';
    this._textarea.id = `jp-guard-request-reason-${++RequestAccessBody._count}`;
    label.htmlFor = this._textarea.id;
    this._textarea.addEventListener('input', this._sync);
    this.node.append(intro, label, this._textarea);
  }

  /** The reason typed (Dialog reads it on accept). */
  getValue(): string {
    return this._textarea.value.trim();
  }

  get textarea(): HTMLTextAreaElement {
    return this._textarea;
  }

  protected override onAfterAttach(): void {
    this._sync();
  }

  /** Disable the dialog's accept button while the reason is empty. */
  private _sync = (): void => {
    const dialog = this.node.closest('.jp-Dialog');
    const accept = dialog?.querySelector<HTMLButtonElement>('.jp-mod-accept');
    if (accept) {
      accept.disabled = this.getValue() === '';
    }
  };

  private _textarea: HTMLTextAreaElement;
  private static _count = 0;
}

/**
 * The Request access flow: ask for a reason, POST access-requests, and show
 * the server's answer. Resolves with the reply, or null (cancelled, refused).
 */
export async function requestAccess(
  request: GuardRequest,
  args: IRequestAccessArgs
): Promise<IAccessRequestReply | null> {
  const dataset = args.dataset;
  const steward = (await lookupSteward(request, dataset)) ?? args.ask ?? null;
  let reason = '';
  // Loop until a reason is given or the user cancels: the button is disabled
  // while it is empty, but Enter or a script could still accept.
  for (;;) {
    const body = new RequestAccessBody({ dataset, steward, reason });
    const dialog = new Dialog<string>({
      title: `Request access to ${dataset}`,
      body,
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Send request' })],
      focusNodeSelector: 'textarea.jp-guard-request-reason'
    });
    const result = await dialog.launch();
    if (!result.button.accept) {
      return null;
    }
    reason = (result.value ?? '').trim();
    if (reason) {
      break;
    }
  }
  let reply: IAccessRequestReply;
  try {
    reply = await request<IAccessRequestReply>(
      'access-requests',
      postJSON({
        dataset,
        reason,
        action: args.action || undefined,
        notebook: args.notebook ?? null,
        kernel_id: args.kernel_id ?? null
      })
    );
  } catch (error) {
    await showErrorMessage('Access request not sent', errorMessage(error));
    return null;
  }
  Notification.success(
    reply.message || `Your request for ${dataset} was sent.`,
    { autoClose: 8000 }
  );
  return reply;
}

/** A one-field body: the dataset name (Request access from the palette). */
export class DatasetNameBody extends Widget {
  constructor() {
    super();
    this.addClass('jp-guard-request-name');
    const input = document.createElement('input');
    input.className = 'jp-mod-styled';
    input.placeholder = 'Dataset name, as in the catalog';
    input.setAttribute('aria-label', 'Dataset name');
    this.node.appendChild(input);
    this._input = input;
  }
  getValue(): string {
    return this._input.value;
  }
  private _input: HTMLInputElement;
}
