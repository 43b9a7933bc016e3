// @jupyterlab/apputils is ESM (not transformed by jest): a small stand-in.
jest.mock('@jupyterlab/apputils', () => {
  const button = (accept: boolean, displayType: string) => (options: any = {}) => ({
    label: options.label ?? (accept ? 'OK' : 'Cancel'),
    accept,
    displayType
  });
  return {
    Dialog: {
      okButton: button(true, 'default'),
      cancelButton: button(false, 'default'),
      warnButton: button(true, 'warn')
    },
    showDialog: jest.fn()
  };
});

import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';

import {
  ExportReviewBody,
  ExportReviewer,
  filesDownloadUrl,
  IReviewEnv,
  IReviewerDeps,
  IResolvedReview,
  nbconvertExportUrl,
  resolveReview,
  wrapExecute
} from '../../components/exportReview';
import { IExportPreview } from '../../tokens';

function makePreview(overrides: Partial<IExportPreview> = {}): IExportPreview {
  return {
    path: 'work/report.ipynb',
    action: 'export',
    format: 'html',
    effect: 'allow',
    permitted: true,
    needs_justification: false,
    purpose: null,
    message: null,
    label: null,
    datasets: [],
    pii_in_outputs: {},
    blocked_cells: [],
    decisions: [],
    redaction: null,
    ...overrides
  };
}

const redacted = makePreview({
  effect: 'redact',
  label: 'confidential',
  datasets: [
    { dataset: 'sales', label: 'confidential' },
    { dataset: 'stores', label: 'internal' }
  ],
  pii_in_outputs: { EMAIL_ADDRESS: 3, PERSON: 2 },
  blocked_cells: ['c-7'],
  decisions: [
    {
      dataset: 'sales',
      label: 'confidential',
      effect: 'redact',
      permitted: true,
      reasons: ['confidential exports are redacted'],
      rule: 'confidential-export',
      ask: 'Dana Steward <dana@example.org>'
    }
  ],
  redaction: {
    outputs_scanned: 12,
    outputs_removed: 1,
    cells_blocked: 1,
    entity_counts: { EMAIL_ADDRESS: 3, PERSON: 2 },
    secrets_masked: 4
  }
});

const justify = makePreview({
  action: 'download',
  format: 'ipynb',
  effect: 'deny',
  permitted: false,
  needs_justification: true,
  label: 'restricted',
  message: 'Download of work/report.ipynb refused: restricted data needs a justification',
  decisions: [
    {
      dataset: 'patients',
      label: 'restricted',
      effect: 'justify',
      permitted: false,
      reasons: ['restricted: justify'],
      rule: 'restricted-justify',
      ask: 'Pat Owner <pat@example.org>'
    }
  ]
});

const refused = makePreview({
  effect: 'deny',
  permitted: false,
  needs_justification: false,
  label: 'restricted',
  message: 'Export of work/report.ipynb as html refused: restricted data may not leave',
  decisions: [
    {
      dataset: 'patients',
      label: 'restricted',
      effect: 'deny',
      permitted: false,
      reasons: ['no'],
      rule: 'restricted-deny',
      ask: 'Pat Owner <pat@example.org>'
    }
  ]
});

function makeEnv(overrides: Partial<IReviewEnv> = {}): IReviewEnv {
  return {
    currentDocumentPath: () => 'work/report.ipynb',
    selectedItems: () => [],
    currentNotebookPath: () => 'work/report.ipynb',
    ...overrides
  };
}

describe('resolveReview', () => {
  it('docmanager:download reviews the current notebook only', () => {
    expect(resolveReview('docmanager:download', {}, makeEnv())).toEqual({
      command: 'docmanager:download',
      targets: [{ path: 'work/report.ipynb', action: 'download', format: 'ipynb' }],
      others: []
    });
    expect(resolveReview('docmanager:download', {}, makeEnv({ currentDocumentPath: () => 'data.csv' }))).toBeNull();
    expect(resolveReview('docmanager:download', {}, makeEnv({ currentDocumentPath: () => null }))).toBeNull();
  });

  it('filebrowser:download reviews each selected notebook; other files pass', () => {
    const env = makeEnv({
      selectedItems: () => [
        { path: 'a.ipynb', type: 'notebook' },
        { path: 'b.csv', type: 'file' },
        { path: 'dir', type: 'directory' },
        { path: 'sub/c.IPYNB', type: 'file' }
      ]
    });
    expect(resolveReview('filebrowser:download', {}, env)).toEqual({
      command: 'filebrowser:download',
      targets: [
        { path: 'a.ipynb', action: 'download', format: 'ipynb' },
        { path: 'sub/c.IPYNB', action: 'download', format: 'ipynb' }
      ],
      others: ['b.csv']
    });
    expect(
      resolveReview('filebrowser:download', {}, makeEnv({ selectedItems: () => [{ path: 'b.csv', type: 'file' }] }))
    ).toBeNull();
  });

  it('notebook:export-to-format reviews the current notebook with args.format', () => {
    expect(resolveReview('notebook:export-to-format', { format: 'pdf' }, makeEnv())).toEqual({
      command: 'notebook:export-to-format',
      targets: [{ path: 'work/report.ipynb', action: 'export', format: 'pdf' }],
      others: []
    });
    expect(resolveReview('notebook:export-to-format', {}, makeEnv())).toBeNull();
    expect(
      resolveReview('notebook:export-to-format', { format: 'html' }, makeEnv({ currentNotebookPath: () => null }))
    ).toBeNull();
  });

  it('other commands are not reviewed', () => {
    expect(resolveReview('docmanager:save', {}, makeEnv())).toBeNull();
  });
});

describe('download and export URLs', () => {
  it('puts the justification on /files with encoded path segments', () => {
    expect(
      filesDownloadUrl('/user/dana/', 'my dir/a#b.ipynb', 'Board report, Q1 & Q2', '_xsrf=tok')
    ).toBe('/user/dana/files/my%20dir/a%23b.ipynb?download=1&justification=Board+report%2C+Q1+%26+Q2&_xsrf=tok');
  });

  it('puts the justification on /nbconvert/<format>', () => {
    expect(nbconvertExportUrl('http://h:8888/', 'html', 'work/r.ipynb', 'needed for audit')).toBe(
      'http://h:8888/nbconvert/html/work/r.ipynb?download=true&justification=needed+for+audit'
    );
  });
});

describe('ExportReviewBody', () => {
  it('shows label, datasets, PII, effect, redactions, blocked cells and whom to ask', () => {
    const body = new ExportReviewBody(redacted);
    const q = (s: string) => body.node.querySelector<HTMLElement>(s)!;
    expect(body.hasClass('jp-guard-export-review')).toBe(true);
    expect(q('.jp-guard-export-label').dataset.guardLabel).toBe('confidential');
    expect(q('.jp-guard-export-label').textContent).toBe('confidential');
    expect(q('.jp-guard-export-effect').dataset.effect).toBe('redact');
    expect(q('.jp-guard-export-effect').textContent).toBe('Will be exported redacted');
    expect(
      Array.from(body.node.querySelectorAll('.jp-guard-export-datasets li')).map(li => li.textContent)
    ).toEqual(['sales (confidential)', 'stores (internal)']);
    expect(q('.jp-guard-export-pii [data-entity="PERSON"]').textContent).toBe('PERSON: 2');
    const entities = Array.from(
      body.node.querySelectorAll<HTMLElement>('.jp-guard-export-redactions .jp-guard-export-entity')
    );
    expect(entities.map(e => [e.dataset.entity, e.textContent])).toEqual([
      ['EMAIL_ADDRESS', 'EMAIL_ADDRESS: 3'],
      ['PERSON', 'PERSON: 2']
    ]);
    expect(q('.jp-guard-export-outputs-removed').textContent).toBe('Outputs removed: 1');
    expect(q('.jp-guard-export-cells-blocked').textContent).toBe('Cells blocked: 1');
    expect(q('.jp-guard-export-secrets-masked').textContent).toBe('Secrets masked: 4');
    expect(q('.jp-guard-export-blocked li').textContent).toBe('c-7');
    expect(q('.jp-guard-export-ask').textContent).toBe('Ask: Dana Steward <dana@example.org>');
    expect(body.node.querySelector('textarea')).toBeNull();
    expect(body.acceptEnabled).toBe(true);
  });

  it('says Not governed and as is for an ungoverned notebook', () => {
    const body = new ExportReviewBody(makePreview({ action: 'download' }));
    const label = body.node.querySelector<HTMLElement>('.jp-guard-export-label')!;
    expect(label.textContent).toBe('Not governed');
    expect(label.dataset.guardLabel).toBe('none');
    const effect = body.node.querySelector<HTMLElement>('.jp-guard-export-effect')!;
    expect(effect.dataset.effect).toBe('allow');
    expect(effect.textContent).toBe('Will be downloaded as is');
    expect(body.node.querySelector('.jp-guard-export-redactions')).toBeNull();
    expect(body.node.querySelector('.jp-guard-export-blocked')).toBeNull();
    expect(body.node.querySelector('.jp-guard-export-purpose')).toBeNull();
  });

  it('shows the sensitivity as the same label badge as the file browser', () => {
    const body = new ExportReviewBody(redacted);
    const label = body.node.querySelector<HTMLElement>('.jp-guard-export-label')!;
    expect(label.dataset.guardLabel).toBe('confidential');
    const badge = label.querySelector<HTMLElement>('.jp-guard-badge')!;
    expect(badge.textContent).toBe('confidential');
    expect(badge.dataset.guardLabel).toBe('confidential');
  });

  it('names the purpose the server decided under', () => {
    const body = new ExportReviewBody(
      makePreview({ effect: 'redact', purpose: 'treatment-research' })
    );
    expect(
      body.node.querySelector('.jp-guard-export-purpose')!.textContent
    ).toBe('Decided under purpose: treatment-research');
  });

  it('requires a justification of 10 characters before the accept button works', () => {
    const body = new ExportReviewBody(justify);
    expect(body.node.querySelector<HTMLElement>('.jp-guard-export-effect')!.dataset.effect).toBe('deny');
    expect(body.node.querySelector('.jp-guard-export-message')!.textContent).toContain('needs a justification');
    const textarea = body.node.querySelector<HTMLTextAreaElement>('textarea.jp-guard-export-justification')!;
    expect(textarea.required).toBe(true);

    // as inside a Dialog: the accept button is found in the dialog's footer
    const dialog = document.createElement('div');
    dialog.className = 'jp-Dialog';
    const content = document.createElement('div');
    const accept = document.createElement('button');
    accept.className = 'jp-Dialog-button jp-mod-accept';
    dialog.append(content, accept);
    document.body.appendChild(dialog);
    Widget.attach(body, content);
    expect(accept.disabled).toBe(true);

    textarea.value = 'too short';
    textarea.dispatchEvent(new Event('input'));
    expect(accept.disabled).toBe(true);
    textarea.value = '   Quarterly board report   ';
    textarea.dispatchEvent(new Event('input'));
    expect(accept.disabled).toBe(false);
    expect(body.getValue()).toBe('Quarterly board report');
    textarea.value = '';
    textarea.dispatchEvent(new Event('input'));
    expect(accept.disabled).toBe(true);
    Widget.detach(body);
    dialog.remove();
  });

  it('says Refused for a final refusal', () => {
    const body = new ExportReviewBody(refused);
    const effect = body.node.querySelector<HTMLElement>('.jp-guard-export-effect')!;
    expect(effect.textContent).toBe('Refused');
    expect(body.node.querySelector('textarea')).toBeNull();
  });
});

function makeDeps(overrides: Partial<IReviewerDeps> = {}) {
  const deps = {
    preview: jest.fn(async () => makePreview()),
    localPath: (p: string) => p.replace(/^RTC:/, ''),
    baseUrl: () => '/base/',
    cookie: () => '',
    downloadPlain: jest.fn(async () => undefined),
    saveBeforeExport: jest.fn(async () => undefined),
    openDownload: jest.fn(),
    openExport: jest.fn(),
    showDialog: jest.fn(async () => ({ button: { accept: true }, value: '' })) as any,
    ...overrides
  };
  return deps;
}

describe('ExportReviewer', () => {
  const target = { path: 'RTC:work/report.ipynb', action: 'export' as const, format: 'html' };

  it('previews without side effects, shows the dialog and proceeds on accept', async () => {
    const deps = makeDeps({ preview: jest.fn(async () => redacted) });
    const reviewer = new ExportReviewer(deps);
    expect(await reviewer.reviewOne(target)).toEqual({ kind: 'proceed' });
    expect(deps.saveBeforeExport).toHaveBeenCalledWith('RTC:work/report.ipynb');
    expect(deps.preview).toHaveBeenCalledWith({ path: 'work/report.ipynb', format: 'html', action: 'export' });
    const options = deps.showDialog.mock.calls[0][0];
    expect(options.title).toBe('Review export: report.ipynb as html');
    expect(options.body).toBeInstanceOf(ExportReviewBody);
    expect(options.buttons.map((b: any) => [b.label, b.accept])).toEqual([
      ['Cancel', false],
      ['Export', true]
    ]);
  });

  it('stops on cancel', async () => {
    const deps = makeDeps({ showDialog: jest.fn(async () => ({ button: { accept: false }, value: '' })) as any });
    expect(await new ExportReviewer(deps).reviewOne(target)).toEqual({ kind: 'stop' });
  });

  it('offers only Close for a refusal without a justification route', async () => {
    const deps = makeDeps({ preview: jest.fn(async () => refused) });
    expect(await new ExportReviewer(deps).reviewOne(target)).toEqual({ kind: 'stop' });
    const buttons = deps.showDialog.mock.calls[0][0].buttons;
    expect(buttons.map((b: any) => [b.label, b.accept])).toEqual([['Close', false]]);
  });

  it('returns the justification when one is needed, and stops when it is too short', async () => {
    const dl = { path: 'work/report.ipynb', action: 'download' as const, format: 'ipynb' };
    const ok = makeDeps({
      preview: jest.fn(async () => justify),
      showDialog: jest.fn(async () => ({ button: { accept: true }, value: '  Audit request #42  ' })) as any
    });
    expect(await new ExportReviewer(ok).reviewOne(dl)).toEqual({ kind: 'justified', justification: 'Audit request #42' });
    expect(ok.saveBeforeExport).not.toHaveBeenCalled(); // downloads do not save
    const short = makeDeps({
      preview: jest.fn(async () => justify),
      showDialog: jest.fn(async () => ({ button: { accept: true }, value: 'because' })) as any
    });
    expect(await new ExportReviewer(short).reviewOne(dl)).toEqual({ kind: 'stop' });
  });

  it('does not proceed silently when the preview fails', async () => {
    const deps = makeDeps({
      preview: jest.fn(async () => {
        throw new Error('Network error');
      }),
      showDialog: jest.fn(async () => ({ button: { accept: false }, value: null })) as any
    });
    expect(await new ExportReviewer(deps).reviewOne(target)).toEqual({ kind: 'stop' });
    const options = deps.showDialog.mock.calls[0][0];
    expect(options.title).toBe('Export review unavailable');
    expect(options.body.node.textContent).toContain('Network error');
    expect(options.body.node.textContent).toContain('The server applies its export policy');
    expect(options.buttons.map((b: any) => b.label)).toEqual(['Cancel', 'Export anyway']);
  });

  describe('run', () => {
    const resolved = (command: string, targets: any[], others: string[] = []): IResolvedReview => ({
      command,
      targets,
      others
    });

    it('runs the original command when everything may proceed', async () => {
      const deps = makeDeps();
      const runOriginal = jest.fn(async () => 'done');
      const r = resolved('docmanager:download', [{ path: 'a.ipynb', action: 'download', format: 'ipynb' }]);
      expect(await new ExportReviewer(deps).run(r, runOriginal)).toBe('done');
      expect(runOriginal).toHaveBeenCalledTimes(1);
    });

    it('downloads with the justification itself instead of the original', async () => {
      const deps = makeDeps({
        preview: jest.fn(async () => justify),
        showDialog: jest.fn(async () => ({ button: { accept: true }, value: 'Regulator asked for it' })) as any,
        cookie: () => '_xsrf=x1'
      });
      const runOriginal = jest.fn();
      const r = resolved('docmanager:download', [{ path: 'RTC:dir/a b.ipynb', action: 'download', format: 'ipynb' }]);
      await new ExportReviewer(deps).run(r, runOriginal);
      expect(runOriginal).not.toHaveBeenCalled();
      expect(deps.openDownload).toHaveBeenCalledWith(
        '/base/files/dir/a%20b.ipynb?download=1&justification=Regulator+asked+for+it&_xsrf=x1'
      );
    });

    it('exports with the justification through /nbconvert', async () => {
      const deps = makeDeps({
        preview: jest.fn(async () => ({ ...justify, action: 'export' as const })),
        showDialog: jest.fn(async () => ({ button: { accept: true }, value: 'Regulator asked for it' })) as any
      });
      const runOriginal = jest.fn();
      const r = resolved('notebook:export-to-format', [{ path: 'a.ipynb', action: 'export', format: 'pdf' }]);
      await new ExportReviewer(deps).run(r, runOriginal);
      expect(runOriginal).not.toHaveBeenCalled();
      expect(deps.openExport).toHaveBeenCalledWith(
        '/base/nbconvert/pdf/a.ipynb?download=true&justification=Regulator+asked+for+it'
      );
    });

    it('does nothing when refused or cancelled', async () => {
      const deps = makeDeps({
        preview: jest.fn(async () => refused),
        showDialog: jest.fn(async () => ({ button: { accept: false }, value: '' })) as any
      });
      const runOriginal = jest.fn();
      const r = resolved('notebook:export-to-format', [{ path: 'a.ipynb', action: 'export', format: 'html' }]);
      expect(await new ExportReviewer(deps).run(r, runOriginal)).toBeUndefined();
      expect(runOriginal).not.toHaveBeenCalled();
      expect(deps.openExport).not.toHaveBeenCalled();
      expect(deps.openDownload).not.toHaveBeenCalled();
    });

    it('downloads a mixed file browser selection item by item', async () => {
      const previews = [makePreview({ action: 'download' }), justify, refused];
      const answers = [
        { button: { accept: true }, value: '' },
        { button: { accept: true }, value: 'For the annual audit' },
        { button: { accept: false }, value: '' }
      ];
      const deps = makeDeps({
        preview: jest.fn(async () => previews.shift()!),
        showDialog: jest.fn(async () => answers.shift()!) as any
      });
      const runOriginal = jest.fn();
      const r = resolved(
        'filebrowser:download',
        [
          { path: 'a.ipynb', action: 'download', format: 'ipynb' },
          { path: 'b.ipynb', action: 'download', format: 'ipynb' },
          { path: 'c.ipynb', action: 'download', format: 'ipynb' }
        ],
        ['data.csv']
      );
      await new ExportReviewer(deps).run(r, runOriginal);
      expect(runOriginal).not.toHaveBeenCalled();
      expect((deps.downloadPlain as jest.Mock).mock.calls.map((c: unknown[]) => c[0])).toEqual(['data.csv', 'a.ipynb']);
      expect(deps.openDownload).toHaveBeenCalledTimes(1);
      expect(deps.openDownload).toHaveBeenCalledWith('/base/files/b.ipynb?download=1&justification=For+the+annual+audit');
    });
  });
});

describe('wrapExecute', () => {
  function makeRegistry() {
    const commands = new CommandRegistry();
    const calls: { id: string; args: unknown }[] = [];
    for (const id of ['docmanager:download', 'filebrowser:download', 'notebook:export-to-format', 'other:cmd']) {
      commands.addCommand(id, {
        execute: args => {
          calls.push({ id, args });
          return `${id} ran`;
        }
      });
    }
    return { commands, calls };
  }

  it('passes commands that are not reviewed through untouched', async () => {
    const { commands, calls } = makeRegistry();
    const intercept = jest.fn(() => new Promise<unknown>(() => undefined));
    const unwrap = wrapExecute(commands, intercept);
    const args = { a: 1 };
    expect(await commands.execute('other:cmd', args)).toBe('other:cmd ran');
    expect(intercept).not.toHaveBeenCalled();
    expect(calls[0].args).toBe(args); // the very same object
    unwrap();
  });

  it('runs the original when the interceptor declines (not a notebook, review off)', async () => {
    const { commands, calls } = makeRegistry();
    const unwrap = wrapExecute(commands, () => null);
    expect(await commands.execute('docmanager:download')).toBe('docmanager:download ran');
    expect(calls).toHaveLength(1);
    unwrap();
  });

  it('holds a reviewed command until the review runs the original, once', async () => {
    const { commands, calls } = makeRegistry();
    let release: () => Promise<unknown> = async () => undefined;
    const intercept = jest.fn((_id: string, _args: unknown, runOriginal: () => Promise<unknown>) => {
      release = runOriginal;
      return new Promise<unknown>(resolve => setTimeout(() => resolve(release()), 0));
    });
    const unwrap = wrapExecute(commands, intercept);
    const result = commands.execute('notebook:export-to-format', { format: 'html' });
    expect(intercept).toHaveBeenCalledTimes(1);
    expect(intercept.mock.calls[0][1]).toEqual({ format: 'html' });
    expect(calls).toHaveLength(0); // nothing before the review
    expect(await result).toBe('notebook:export-to-format ran');
    expect(calls).toHaveLength(1);
    expect(intercept).toHaveBeenCalledTimes(1); // the original call was not reviewed again
    unwrap();
  });

  it('does not review a reviewed command executed from inside the original (re-entrancy)', async () => {
    const commands = new CommandRegistry();
    const ran: string[] = [];
    commands.addCommand('filebrowser:download', {
      execute: () => {
        ran.push('filebrowser:download');
        return commands.execute('docmanager:download');
      }
    });
    commands.addCommand('docmanager:download', {
      execute: () => {
        ran.push('docmanager:download');
      }
    });
    const intercept = jest.fn((_id: string, _args: unknown, runOriginal: () => Promise<unknown>) => runOriginal());
    const unwrap = wrapExecute(commands, intercept);
    await commands.execute('filebrowser:download');
    expect(ran).toEqual(['filebrowser:download', 'docmanager:download']);
    expect(intercept).toHaveBeenCalledTimes(1);
    // outside the original, it is reviewed again
    await commands.execute('docmanager:download');
    expect(intercept).toHaveBeenCalledTimes(2);
    unwrap();
  });

  it('stops the command when the review refuses', async () => {
    const { commands, calls } = makeRegistry();
    const unwrap = wrapExecute(commands, () => Promise.resolve(undefined));
    expect(await commands.execute('docmanager:download')).toBeUndefined();
    expect(calls).toHaveLength(0);
    unwrap();
  });

  it('wraps once and can be undone', async () => {
    const { commands } = makeRegistry();
    const original = commands.execute;
    const intercept = jest.fn(() => Promise.resolve('reviewed'));
    const unwrap = wrapExecute(commands, intercept);
    const wrapped = commands.execute;
    wrapExecute(commands, intercept)(); // a second wrap is a no-op
    expect(commands.execute).toBe(wrapped);
    expect(await commands.execute('docmanager:download')).toBe('reviewed');
    expect(intercept).toHaveBeenCalledTimes(1);
    unwrap();
    expect(commands.execute).toBe(original);
  });
});
