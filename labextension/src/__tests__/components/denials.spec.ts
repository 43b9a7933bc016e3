// JupyterLab's apputils ships ES modules jest cannot load: mock the
// notifications and dialogs (a Dialog whose answer each test scripts).
jest.mock('@jupyterlab/apputils', () => {
  class Dialog {
    static instances: Dialog[] = [];
    static respond: (dialog: Dialog) => Promise<unknown> = async () => ({
      button: { accept: false },
      value: null
    });
    static okButton(options: object = {}) {
      return { label: 'OK', accept: true, ...options };
    }
    static cancelButton(options: object = {}) {
      return { label: 'Cancel', accept: false, ...options };
    }
    classes: string[] = [];
    constructor(public options: any) {
      Dialog.instances.push(this);
    }
    addClass(name: string) {
      this.classes.push(name);
    }
    launch() {
      return Dialog.respond(this);
    }
  }
  return {
    Dialog,
    Notification: { error: jest.fn(() => 'id'), success: jest.fn(() => 'id') },
    showDialog: jest.fn(async () => ({ button: { accept: true }, value: null })),
    showErrorMessage: jest.fn(async () => undefined)
  };
});

import { Dialog, Notification, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import {
  DenialWatcher,
  IDenialNotice,
  IIOPubLike,
  MAX_NOTIFICATION_LENGTH,
  RequestAccessBody,
  denialDetailsNode,
  denialKey,
  denialText,
  guardDeniedError,
  matchDenial,
  requestAccess
} from '../../components/denials';
import { CommandIDs, IKernelDenial, IKernelGovernance } from '../../tokens';

const MockDialog = Dialog as unknown as {
  instances: any[];
  respond: (dialog: any) => Promise<unknown>;
};

function denial(overrides: Partial<IKernelDenial> = {}): IKernelDenial {
  return {
    msg_id: 'exec-1',
    cell_id: 'cell-1',
    dataset: 'patients',
    label: 'restricted',
    target: '/srv/data/patients.csv',
    effect: 'deny',
    message:
      "alice may not read 'patients' (restricted data): rule 'restricted-needs-purpose' gives deny for read of restricted data. To ask for access, contact Dana Steward <dana@example.org>.",
    reasons: [
      "rule 'restricted-needs-purpose' gives deny for read of restricted data.",
      'Declare a purpose first.'
    ],
    ask: 'Dana Steward <dana@example.org>',
    audit_seq: 12,
    time: '2026-11-21T10:00:00Z',
    ...overrides
  };
}

function governance(denials: IKernelDenial[]): IKernelGovernance {
  return {
    kernel_id: 'k1',
    notebook: 'analysis.ipynb',
    guarded: true,
    purpose: null,
    purposes: [],
    highest: null,
    datasets: [],
    denials,
    version: 3
  };
}

function errorMsg(parentMsgId: string, ename = 'GuardDenied', evalue = 'alice may not read it'): IIOPubLike {
  return {
    header: { msg_type: 'error' },
    parent_header: { msg_id: parentMsgId },
    content: { ename, evalue, traceback: [] }
  };
}

class FakeSession {
  iopubMessage = new Signal<this, IIOPubLike>(this);
  session = { kernel: { id: 'k1' } };
}

async function flushPromises(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await Promise.resolve();
  }
}

beforeEach(() => {
  jest.clearAllMocks();
  MockDialog.instances = [];
});

// ---------------------------------------------------------------------------

describe('guardDeniedError', () => {
  it('picks GuardDenied errors with their parent msg_id', () => {
    expect(guardDeniedError(errorMsg('exec-1'))).toEqual({
      parentMsgId: 'exec-1',
      evalue: 'alice may not read it'
    });
  });

  it('ignores other errors and other messages', () => {
    expect(guardDeniedError(errorMsg('exec-1', 'ValueError'))).toBeNull();
    expect(
      guardDeniedError({ header: { msg_type: 'stream' }, parent_header: {}, content: {} })
    ).toBeNull();
  });
});

describe('matchDenial', () => {
  const error = { parentMsgId: 'exec-2', evalue: 'alice may not read registry' };

  it("finds the denial with the error's msg_id", () => {
    const notice = matchDenial(
      [denial({ msg_id: 'exec-2', dataset: 'visits' }), denial({ msg_id: 'exec-9', dataset: 'other' })],
      error
    );
    expect(notice.source).toBe('msg_id');
    expect(notice.dataset).toBe('visits');
    expect(notice.key).toBe(denialKey('exec-2', 'visits'));
  });

  it('falls back to the newest denial', () => {
    const notice = matchDenial([denial({ msg_id: 'a', dataset: 'old' }), denial({ msg_id: 'b', dataset: 'new' })], error);
    expect(notice.source).toBe('newest');
    expect(notice.dataset).toBe('new');
  });

  it('falls back to the error text when the newest was already shown', () => {
    const shown = new Set([denialKey('b', 'new')]);
    const notice = matchDenial([denial({ msg_id: 'b', dataset: 'new' })], error, shown);
    expect(notice.source).toBe('evalue');
    expect(notice.message).toBe('alice may not read registry');
    expect(notice.dataset).toBeNull();
  });

  it('falls back to the error text without denials', () => {
    expect(matchDenial([], error).source).toBe('evalue');
  });
});

describe('denialText', () => {
  const notice = (overrides: Partial<IDenialNotice> = {}): IDenialNotice => ({
    key: 'k',
    msgId: 'exec-1',
    dataset: 'patients',
    label: 'restricted',
    target: null,
    message: 'full message',
    reasons: ['No rule allows it.'],
    ask: 'Dana Steward <dana@example.org>',
    source: 'msg_id',
    ...overrides
  });

  it('says what, why and whom to ask', () => {
    expect(denialText(notice())).toBe(
      'Read denied: patients (restricted). No rule allows it. Ask Dana Steward <dana@example.org>.'
    );
  });

  it('uses the most specific (last) reason and drops "Ask" without a contact', () => {
    expect(denialText(notice({ reasons: ['rule x gives deny.', 'Declare a purpose first.'], ask: null }))).toBe(
      'Read denied: patients (restricted). Declare a purpose first.'
    );
  });

  it('shortens the why to fit a toast, keeping what and whom to ask', () => {
    const text = denialText(notice({ reasons: ['x'.repeat(300)] }));
    expect(text.length).toBeLessThanOrEqual(MAX_NOTIFICATION_LENGTH);
    expect(text.startsWith('Read denied: patients (restricted). xxx')).toBe(true);
    expect(text.endsWith('…. Ask Dana Steward <dana@example.org>.')).toBe(true);
  });

  it('uses the error text when nothing better is known', () => {
    expect(denialText(notice({ source: 'evalue', message: 'alice may not read it.' }))).toBe(
      'Read denied. alice may not read it.'
    );
  });
});

describe('DenialWatcher', () => {
  function setup(answer: () => unknown = () => governance([denial()])) {
    const request = jest.fn(async () => {
      const value = answer();
      if (value instanceof Error) {
        throw value;
      }
      return value;
    });
    const commands = { execute: jest.fn(async () => undefined) };
    const watcher = new DenialWatcher({ request: request as any, commands });
    const session = new FakeSession();
    const watch = watcher.watch(session, () => 'analysis.ipynb');
    return { request, commands, watcher, session, watch };
  }

  it('notifies with the matched denial and its actions', async () => {
    const { request, session } = setup();
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    expect(request).toHaveBeenCalledWith('kernels/k1');
    expect(Notification.error).toHaveBeenCalledTimes(1);
    const [text, options] = (Notification.error as jest.Mock).mock.calls[0];
    expect(text).toBe(
      'Read denied: patients (restricted). Declare a purpose first. Ask Dana Steward <dana@example.org>.'
    );
    expect(options.autoClose).toBe(false);
    expect(options.actions.map((a: any) => a.label)).toEqual(['Request access', 'Details']);
  });

  it('"Request access" runs the command with dataset, notebook and kernel', async () => {
    const { commands, session } = setup();
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    const { actions } = (Notification.error as jest.Mock).mock.calls[0][1];
    actions[0].callback(new MouseEvent('click'));
    expect(commands.execute).toHaveBeenCalledWith(CommandIDs.requestAccess, {
      dataset: 'patients',
      notebook: 'analysis.ipynb',
      kernel_id: 'k1',
      ask: 'Dana Steward <dana@example.org>'
    });
  });

  it('"Details" shows the full message and reasons and keeps the toast', async () => {
    const { session } = setup();
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    const { actions } = (Notification.error as jest.Mock).mock.calls[0][1];
    const event = new MouseEvent('click', { cancelable: true });
    actions[1].callback(event);
    expect(event.defaultPrevented).toBe(true);
    const body = (showDialog as jest.Mock).mock.calls[0][0].body as Widget;
    expect(body.node.classList.contains('jp-guard-denial-details')).toBe(true);
    expect(body.node.textContent).toContain("alice may not read 'patients'");
    expect(body.node.querySelectorAll('.jp-guard-denial-reasons li').length).toBe(2);
  });

  it('shows each denial once, even when several panels see the error', async () => {
    const { watcher, session } = setup();
    const other = new FakeSession(); // a second notebook on the same kernel
    watcher.watch(other, () => 'other.ipynb');
    session.iopubMessage.emit(errorMsg('exec-1'));
    other.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    expect(Notification.error).toHaveBeenCalledTimes(1);
  });

  it('shows a new denial of the same dataset from another execution', async () => {
    let denials = [denial()];
    const { session } = setup(() => governance(denials));
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    denials = [denial(), denial({ msg_id: 'exec-2' })];
    session.iopubMessage.emit(errorMsg('exec-2'));
    await flushPromises();
    expect(Notification.error).toHaveBeenCalledTimes(2);
  });

  it("falls back to the error text when the server cannot say", async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const { session } = setup(() => new Error('503'));
    session.iopubMessage.emit(errorMsg('exec-7', 'GuardDenied', 'alice may not read x.'));
    await flushPromises();
    const [text, options] = (Notification.error as jest.Mock).mock.calls[0];
    expect(text).toBe('Read denied. alice may not read x.');
    expect(options.actions.map((a: any) => a.label)).toEqual(['Details']);
    warn.mockRestore();
  });

  it('respects notifyOnDenial', async () => {
    const { watcher, session, request } = setup();
    watcher.enabled = false;
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    expect(request).not.toHaveBeenCalled();
    expect(Notification.error).not.toHaveBeenCalled();
  });

  it('ignores other messages and stops when the watch is disposed', async () => {
    const { session, watch, request } = setup();
    session.iopubMessage.emit(errorMsg('exec-1', 'KeyError'));
    watch.dispose();
    session.iopubMessage.emit(errorMsg('exec-1'));
    await flushPromises();
    expect(request).not.toHaveBeenCalled();
  });
});

describe('denialDetailsNode', () => {
  it('shows message, reasons and whom to ask', () => {
    const node = denialDetailsNode(matchDenial([denial()], { parentMsgId: 'exec-1', evalue: '' }));
    expect(node.querySelector('.jp-guard-denial-ask')!.textContent).toBe(
      'Whom to ask: Dana Steward <dana@example.org>'
    );
  });
});

describe('requestAccess', () => {
  const reply = {
    audit_seq: 42,
    dataset: 'patients',
    steward: { name: 'Dana Steward', email: 'dana@example.org' },
    message: "Your request to read 'patients' was recorded (#42); Dana Steward reviews it."
  };

  function server(post: () => unknown = () => reply) {
    const request = jest.fn(async (endPoint: string, _init?: RequestInit) => {
      if (endPoint.startsWith('catalog')) {
        return {
          datasets: [{ name: 'patients', steward: reply.steward }],
          sources: [],
          labels: [],
          purposes: []
        };
      }
      const value = post();
      if (value instanceof Error) {
        throw value;
      }
      return value;
    });
    return request;
  }

  function answerWith(reason: string | null) {
    MockDialog.respond = async (dialog: any) => {
      if (reason === null) {
        return { button: { accept: false }, value: null };
      }
      const body = dialog.options.body as RequestAccessBody;
      body.textarea.value = reason;
      return { button: { accept: true }, value: body.getValue() };
    };
  }

  it('names dataset and steward, requires a reason, posts and confirms', async () => {
    const request = server();
    answerWith('  Cohort study for the ethics board  ');
    const result = await requestAccess(request as any, {
      dataset: 'patients',
      notebook: 'analysis.ipynb',
      kernel_id: 'k1'
    });
    expect(request).toHaveBeenCalledWith('catalog?q=patients');
    const dialog = MockDialog.instances[0];
    expect(dialog.options.buttons.map((b: any) => b.label)).toEqual(['Cancel', 'Send request']);
    const body = dialog.options.body as RequestAccessBody;
    expect(body.node.classList.contains('jp-guard-request-dialog')).toBe(true);
    expect(body.node.querySelector('.jp-guard-request-dataset')!.textContent).toBe('patients');
    expect(body.node.querySelector('.jp-guard-request-steward')!.textContent).toBe(
      'Dana Steward <dana@example.org>'
    );
    expect(body.textarea.classList.contains('jp-guard-request-reason')).toBe(true);
    expect(body.textarea.required).toBe(true);

    const post = request.mock.calls.find(c => c[0] === 'access-requests')!;
    expect(post[1]!.method).toBe('POST');
    expect(JSON.parse(post[1]!.body as string)).toEqual({
      dataset: 'patients',
      reason: 'Cohort study for the ethics board',
      notebook: 'analysis.ipynb',
      kernel_id: 'k1'
    });
    expect(Notification.success).toHaveBeenCalledWith(reply.message, expect.anything());
    expect(result).toEqual(reply);
  });

  it('sends nothing when cancelled', async () => {
    const request = server();
    answerWith(null);
    expect(await requestAccess(request as any, { dataset: 'patients' })).toBeNull();
    expect(request.mock.calls.some(c => c[0] === 'access-requests')).toBe(false);
  });

  it('asks again when the reason is empty', async () => {
    const request = server();
    let round = 0;
    MockDialog.respond = async (dialog: any) => {
      round++;
      const body = dialog.options.body as RequestAccessBody;
      body.textarea.value = round === 1 ? '   ' : 'A real reason';
      return { button: { accept: true }, value: body.getValue() };
    };
    await requestAccess(request as any, { dataset: 'patients' });
    expect(MockDialog.instances.length).toBe(2);
    const post = request.mock.calls.find(c => c[0] === 'access-requests')!;
    expect(JSON.parse(post[1]!.body as string).reason).toBe('A real reason');
  });

  it("shows the server's message when the request is refused", async () => {
    const request = server(() => new Error("no dataset 'patients' in the catalog that bob can see"));
    answerWith('reason');
    expect(await requestAccess(request as any, { dataset: 'patients' })).toBeNull();
    expect(showErrorMessage).toHaveBeenCalledWith(
      'Access request not sent',
      "no dataset 'patients' in the catalog that bob can see"
    );
    expect(Notification.success).not.toHaveBeenCalled();
  });

  it('says whom the denial named, or "its steward", when the catalog cannot tell', async () => {
    const request = jest.fn(async (endPoint: string, _init?: RequestInit) => {
      if (endPoint.startsWith('catalog')) {
        throw new Error('down');
      }
      return reply;
    });
    answerWith('reason');
    await requestAccess(request as any, { dataset: 'patients', ask: 'Hana HR <hana@example.org>' });
    let body = MockDialog.instances[0].options.body as RequestAccessBody;
    expect(body.node.querySelector('.jp-guard-request-steward')!.textContent).toBe(
      'Hana HR <hana@example.org>'
    );
    await requestAccess(request as any, { dataset: 'patients' });
    body = MockDialog.instances[1].options.body as RequestAccessBody;
    expect(body.node.querySelector('.jp-guard-request-steward')!.textContent).toBe('its steward');
    // "ask" is for the dialog only, not sent to the server.
    const posts = request.mock.calls.filter(c => c[0] === 'access-requests');
    expect(posts.length).toBe(2);
    expect(JSON.parse(posts[0][1]!.body as string)).not.toHaveProperty('ask');
  });
});

describe('RequestAccessBody', () => {
  it('disables the dialog button while the reason is empty', () => {
    const dialogNode = document.createElement('div');
    dialogNode.className = 'jp-Dialog';
    const host = document.createElement('div');
    const accept = document.createElement('button');
    accept.className = 'jp-Dialog-button jp-mod-accept';
    dialogNode.append(host, accept);
    document.body.appendChild(dialogNode);
    const body = new RequestAccessBody({ dataset: 'patients', steward: null });
    Widget.attach(body, host);
    expect(accept.disabled).toBe(true);
    body.textarea.value = 'why';
    body.textarea.dispatchEvent(new Event('input'));
    expect(accept.disabled).toBe(false);
    body.textarea.value = '  ';
    body.textarea.dispatchEvent(new Event('input'));
    expect(accept.disabled).toBe(true);
    Widget.detach(body);
    dialogNode.remove();
  });
});
