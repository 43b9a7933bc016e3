// ESM JupyterLab packages jest does not transform: small stand-ins.
jest.mock('@jupyterlab/application', () => ({}));
jest.mock('@jupyterlab/apputils', () => {
  class MainAreaWidget {
    constructor(options: { content: any }) {
      this.content = options.content;
    }
    content: any;
    id = '';
    title: any = {};
    isDisposed = false;
    disposed = { connect: jest.fn() };
  }
  return { ICommandPalette: {}, MainAreaWidget, showErrorMessage: jest.fn(async () => undefined) };
});
jest.mock('@jupyterlab/ui-components', () => ({ listIcon: { name: 'list' } }));
jest.mock('@jupyterlab/settingregistry', () => ({ ISettingRegistry: {} }));
// The real helpers (postJSON, errorMessage, ...), a mock server.
jest.mock('../../handler', () => ({ ...jest.requireActual('../../handler'), requestAPI: jest.fn() }));

import { showErrorMessage } from '@jupyterlab/apputils';
import { CommandRegistry } from '@lumino/commands';

import { requestAPI } from '../../handler';
import auditViewerPlugin, {
  activateAuditViewer,
  checkAuditAccess,
  httpStatus,
  labelNames,
  NOT_STEWARD_TITLE
} from '../../plugins/audit';
import { CommandIDs } from '../../tokens';

const request = requestAPI as jest.Mock;
const showError = showErrorMessage as jest.Mock;
const flush = () => new Promise(resolve => setTimeout(resolve, 0));

function forbidden(message: string): Error {
  const error = new Error(message) as Error & { response: { status: number } };
  error.response = { status: 403 };
  return error;
}

function makeApp() {
  const commands = new CommandRegistry();
  const shell = { add: jest.fn(), activateById: jest.fn() };
  const app = {
    commands,
    shell,
    serviceManager: { serverSettings: { baseUrl: 'http://h/' } }
  };
  const palette = { addItem: jest.fn() };
  return { app, commands, shell, palette };
}

function serve(steward: boolean, auditError?: Error) {
  request.mockImplementation(async (endpoint: string) => {
    if (endpoint === 'status') {
      return { user: { name: 'dana', steward } };
    }
    if (endpoint.startsWith('audit?')) {
      if (auditError) {
        throw auditError;
      }
      return { records: [], next: null };
    }
    if (endpoint === 'catalog') {
      return { labels: [{ name: 'public', rank: 0 }] };
    }
    throw new Error(`unexpected ${endpoint}`);
  });
}

describe('audit viewer plugin', () => {
  let markSpy: jest.SpyInstance;

  beforeEach(() => {
    request.mockReset();
    showError.mockClear();
    if (typeof performance.mark !== 'function') {
      (performance as any).mark = () => undefined;
    }
    markSpy = jest.spyOn(performance, 'mark').mockImplementation((() => undefined) as any);
  });

  afterEach(() => {
    markSpy.mockRestore();
  });

  it('has the plugin id and optional tokens', () => {
    expect(auditViewerPlugin.id).toBe('jupyter-guard:audit-viewer');
    expect(auditViewerPlugin.autoStart).toBe(true);
    expect(auditViewerPlugin.requires ?? []).toHaveLength(0);
    expect(auditViewerPlugin.optional).toHaveLength(2);
  });

  it('shows the command to stewards only, in the palette', async () => {
    serve(false);
    const { app, commands, palette } = makeApp();
    activateAuditViewer(app as any, palette as any, null);
    expect(palette.addItem).toHaveBeenCalledWith({
      command: CommandIDs.openAuditViewer,
      category: 'Data Governance'
    });
    expect(commands.label(CommandIDs.openAuditViewer)).toBe('Audit Log (stewards)');
    await flush();
    expect(commands.isVisible(CommandIDs.openAuditViewer)).toBe(false);
    expect(commands.isEnabled(CommandIDs.openAuditViewer)).toBe(false);

    serve(true);
    const second = makeApp();
    activateAuditViewer(second.app as any, null, null);
    await flush();
    expect(second.commands.isVisible(CommandIDs.openAuditViewer)).toBe(true);
    expect(second.commands.isEnabled(CommandIDs.openAuditViewer)).toBe(true);
  });

  it('asks the server and shows its 403 message instead of opening for a non-steward', async () => {
    serve(false, forbidden('dana is not a data steward; the audit log is for stewards'));
    const { app, commands, shell } = makeApp();
    activateAuditViewer(app as any, null, null);
    await commands.execute(CommandIDs.openAuditViewer);
    expect(request).toHaveBeenCalledWith('audit?limit=1', {}, app.serviceManager.serverSettings);
    expect(showError).toHaveBeenCalledWith(
      NOT_STEWARD_TITLE,
      'dana is not a data steward; the audit log is for stewards'
    );
    expect(shell.add).not.toHaveBeenCalled();
  });

  it('opens the viewer for a steward, marks the start, and reuses it', async () => {
    serve(true);
    const { app, commands, shell } = makeApp();
    activateAuditViewer(app as any, null, null);
    await commands.execute(CommandIDs.openAuditViewer);
    expect(markSpy).toHaveBeenCalledWith('jupyter-guard:audit-open');
    expect(shell.add).toHaveBeenCalledTimes(1);
    const [main, area] = shell.add.mock.calls[0];
    expect(area).toBe('main');
    expect(main.content.id).toBe('jp-guard-audit');
    expect(main.content.hasClass('jp-guard-audit-viewer')).toBe(true);
    expect(main.title.label).toBe('Audit log');
    // the first page was requested with the default page size
    expect(request).toHaveBeenCalledWith(
      'audit?limit=200&order=desc',
      expect.anything(),
      app.serviceManager.serverSettings
    );
    await commands.execute(CommandIDs.openAuditViewer);
    expect(shell.add).toHaveBeenCalledTimes(1);
    expect(shell.activateById).toHaveBeenLastCalledWith(main.id);
    main.content.dispose();
  });
});

describe('checkAuditAccess', () => {
  it('tells apart a refusal from an unavailable server', async () => {
    const show = jest.fn(async () => undefined);
    expect(await checkAuditAccess(async () => ({}), show)).toBe(true);
    expect(await checkAuditAccess(async () => Promise.reject(new Error('Failed to fetch')), show)).toBe(false);
    expect(show).toHaveBeenLastCalledWith('Audit log unavailable', 'Failed to fetch');
    expect(httpStatus(forbidden('x'))).toBe(403);
    expect(httpStatus(new Error('x'))).toBeNull();
  });
});

describe('labelNames', () => {
  it('reads label objects by rank and plain names', () => {
    expect(
      labelNames([
        { name: 'restricted', rank: 3 },
        { name: 'public', rank: 0 }
      ])
    ).toEqual(['public', 'restricted']);
    expect(labelNames(['public', 'internal'])).toEqual(['public', 'internal']);
    expect(labelNames(undefined)).toEqual([]);
  });
});
