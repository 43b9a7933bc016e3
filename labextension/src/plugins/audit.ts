/**
 * The steward's audit viewer: command, palette item, main-area widget.
 *
 * The command is shown to stewards only (GET status, user.steward), but that
 * is convenience: executing it always asks the server first (GET
 * audit?limit=1), which answers 403 with a message to anyone else.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  ICommandPalette,
  MainAreaWidget,
  showErrorMessage
} from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { listIcon } from '@jupyterlab/ui-components';

import { auditExportUrl, documentCookie } from '../components/auditQuery';
import {
  auditEndpoint,
  AuditViewer,
  IAuditViewerApi,
  mark,
  MARK_OPEN
} from '../components/auditViewer';
import { watchGuardSettings } from '../guardSettings';
import { requestAPI } from '../handler';
import { errorReason } from '../components/statusWidget';
import {
  AUDIT_VIEWER_ID,
  CommandIDs,
  IAuditPage,
  IAuditVerify,
  ICatalogResponse,
  IGuardStatus
} from '../tokens';

/** Plugin id. */
export const AUDIT_PLUGIN_ID = 'jupyter-guard:audit-viewer';

/** Id of the MainAreaWidget around the viewer (the content has AUDIT_VIEWER_ID). */
export const AUDIT_PANEL_ID = `${AUDIT_VIEWER_ID}-panel`;

/** Title of the error a non-steward gets. */
export const NOT_STEWARD_TITLE = 'Audit log is for data stewards';

/**
 * Label names of `GET catalog`, least sensitive first. The catalog answers
 * IGuardLabel objects (tokens.ts); older servers answered plain names.
 */
export function labelNames(labels: unknown): string[] {
  if (!Array.isArray(labels)) {
    return [];
  }
  const named = labels
    .map((label, i) => {
      if (typeof label === 'string') {
        return { name: label, rank: i };
      }
      const l = label as { name?: unknown; rank?: unknown };
      return typeof l?.name === 'string'
        ? { name: l.name, rank: typeof l.rank === 'number' ? l.rank : i }
        : null;
    })
    .filter((l): l is { name: string; rank: number } => l !== null);
  return named.sort((a, b) => a.rank - b.rank).map(l => l.name);
}

/** The viewer's server calls. */
export function createAuditApi(
  serverSettings: ServerConnection.ISettings
): IAuditViewerApi {
  return {
    fetchPage: (params, signal) =>
      requestAPI<IAuditPage>(auditEndpoint(params), signal ? { signal } : {}, serverSettings),
    verify: () => requestAPI<IAuditVerify>('audit/verify', {}, serverSettings),
    labels: async () => {
      const catalog = await requestAPI<ICatalogResponse>('catalog', {}, serverSettings);
      return labelNames(catalog?.labels);
    },
    exportUrl: (format, filters) =>
      auditExportUrl(serverSettings.baseUrl, format, filters, documentCookie())
  };
}

/** The HTTP status of a failed request, or null (network error, other). */
export function httpStatus(error: unknown): number | null {
  if (error instanceof ServerConnection.ResponseError) {
    return error.response.status;
  }
  const response = (error as { response?: { status?: unknown } })?.response;
  return typeof response?.status === 'number' ? response.status : null;
}

/**
 * Ask the server whether the caller may read the audit log. Resolves true,
 * or shows the server's refusal (403: "Audit log is for data stewards") and
 * resolves false.
 */
export async function checkAuditAccess(
  probe: () => Promise<unknown>,
  showError: (title: string, message: string) => Promise<unknown>
): Promise<boolean> {
  try {
    await probe();
    return true;
  } catch (error) {
    if (httpStatus(error) === 403) {
      await showError(NOT_STEWARD_TITLE, errorReason(error));
    } else {
      await showError('Audit log unavailable', errorReason(error));
    }
    return false;
  }
}

export function activateAuditViewer(
  app: JupyterFrontEnd,
  palette: ICommandPalette | null,
  settingRegistry: ISettingRegistry | null
): void {
  const serverSettings = app.serviceManager.serverSettings;
  const api = createAuditApi(serverSettings);
  let steward = false;
  let current: MainAreaWidget<AuditViewer> | null = null;

  const settings = watchGuardSettings(settingRegistry, value => {
    if (current && !current.isDisposed) {
      current.content.pageSize = value.auditPageSize;
    }
  });

  const refreshSteward = async (): Promise<void> => {
    try {
      const status = await requestAPI<IGuardStatus>('status', {}, serverSettings);
      steward = status?.user?.steward === true;
    } catch {
      steward = false;
    }
    app.commands.notifyCommandChanged(CommandIDs.openAuditViewer);
  };

  app.commands.addCommand(CommandIDs.openAuditViewer, {
    label: 'Audit Log (stewards)',
    caption: 'Browse, filter, verify and export the jupyter_guard audit log',
    icon: listIcon,
    isVisible: () => steward,
    isEnabled: () => steward,
    execute: async () => {
      if (current && !current.isDisposed) {
        app.shell.activateById(current.id);
        void refreshSteward();
        return;
      }
      mark(MARK_OPEN);
      void refreshSteward();
      // The server decides, whatever the UI shows.
      const allowed = await checkAuditAccess(
        () => requestAPI<IAuditPage>('audit?limit=1', {}, serverSettings),
        (title, message) => showErrorMessage(title, message)
      );
      if (!allowed) {
        return;
      }
      if (current && !current.isDisposed) {
        app.shell.activateById(current.id); // opened meanwhile by a second click
        return;
      }
      const viewer = new AuditViewer({
        api,
        pageSize: settings.current.auditPageSize
      });
      const main = new MainAreaWidget({ content: viewer });
      main.id = AUDIT_PANEL_ID;
      main.title.label = 'Audit log';
      main.title.caption = viewer.title.caption;
      main.title.icon = listIcon;
      main.title.closable = true;
      main.disposed.connect(() => {
        if (current === main) {
          current = null;
        }
      });
      current = main;
      // Request the first page before the shell lays the widget out.
      void viewer.start();
      app.shell.add(main, 'main');
      app.shell.activateById(main.id);
    }
  });

  palette?.addItem({
    command: CommandIDs.openAuditViewer,
    category: 'Data Governance'
  });
  // No launcher item: @jupyterlab/launcher is not a dependency of this extension.

  void refreshSteward();
}

const auditViewerPlugin: JupyterFrontEndPlugin<void> = {
  id: AUDIT_PLUGIN_ID,
  description: 'The data steward audit log viewer (filters, chain verification, export).',
  autoStart: true,
  optional: [ICommandPalette, ISettingRegistry],
  activate: activateAuditViewer
};

export { auditViewerPlugin };
export default auditViewerPlugin;
