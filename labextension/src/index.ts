import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  Dialog,
  ICommandPalette,
  showDialog,
  showErrorMessage
} from '@jupyterlab/apputils';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ISignal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import { CatalogPanel } from './components/catalogPanel';
import { DenialWatcher, IRequestAccessArgs, requestAccess } from './components/denials';
import { FileBadges } from './components/fileBadges';
import { watchGuardSettings } from './guardSettings';
import { GuardRequest, requestAPI } from './handler';
import { guardShieldIcon } from './components/icons';
import { forgetLabels } from './components/labelBadge';
import {
  EventEmission,
  GovernanceIndicator,
  TOOLBAR_ITEM_NAME,
  openGovernanceDialog
} from './components/notebookIndicator';
import auditViewerPlugin from './plugins/audit';
import exportReviewPlugin from './plugins/exportReview';
import { GuardStatusWidget } from './components/statusWidget';
import {
  AUDIT_EVENT_SCHEMA_ID,
  CATALOG_PANEL_ID,
  CommandIDs,
  DEFAULT_SETTINGS,
  IGuardSettings,
  IGuardStatus,
  PLUGIN_ID,
  STATUS_ITEM_ID
} from './tokens';

const CATEGORY = 'Data Governance';

/** requestAPI bound to the app's server settings. */
function makeRequest(app: JupyterFrontEnd): GuardRequest {
  const settings = app.serviceManager.serverSettings;
  return <T>(endPoint: string, init: RequestInit = {}) =>
    requestAPI<T>(endPoint, init, settings);
}

/**
 * Call `apply` with the user's settings now (DEFAULT_SETTINGS until they load,
 * or if they cannot) and again whenever they change.
 */
function watchSettings(
  registry: ISettingRegistry | null,
  apply: (settings: IGuardSettings) => void
): void {
  apply(watchGuardSettings(registry, apply).current);
}

/** The server's audit events (`{schema_id, ...IAuditRecord}`), or null if unavailable. */
function auditEvents(app: JupyterFrontEnd): ISignal<any, EventEmission> | null {
  return app.serviceManager.events?.stream ?? null;
}

/**
 * Shows the governance status in the status bar and offers a command that
 * shows the full status response.
 */
const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'jupyter_guard status (catalog, roles, audit store) in the status bar.',
  autoStart: true,
  optional: [IStatusBar, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    statusBar: IStatusBar | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);
    const fetchStatus = () => request<IGuardStatus>('status');

    app.commands.addCommand(CommandIDs.showStatus, {
      label: 'Show Data Governance (jupyter_guard) Status',
      caption: 'Show the jupyter_guard status of this server',
      execute: async () => {
        let status: IGuardStatus;
        try {
          status = await fetchStatus();
        } catch (error) {
          await showErrorMessage(
            'jupyter_guard status unavailable',
            error as Error
          );
          return;
        }
        const body = new Widget({ node: document.createElement('pre') });
        body.addClass('jp-guard-status-json');
        body.node.textContent = JSON.stringify(status, null, 2);
        await showDialog({
          title: 'jupyter_guard status',
          body,
          buttons: [Dialog.okButton()]
        });
      }
    });
    palette?.addItem({ command: CommandIDs.showStatus, category: CATEGORY });

    if (!statusBar) {
      return;
    }
    const widget = new GuardStatusWidget({
      fetchStatus,
      refreshInterval: DEFAULT_SETTINGS.refreshInterval,
      onClick: () => {
        void app.commands.execute(CommandIDs.showStatus);
      }
    });
    statusBar.registerStatusItem(STATUS_ITEM_ID, {
      item: widget,
      align: 'left',
      rank: 100
    });
    void widget.refresh();
    watchSettings(settingRegistry, settings => {
      widget.refreshInterval = settings.refreshInterval;
    });
  }
};

/** Label badges in the default file browser. */
const fileBadgesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:file-badges',
  description: 'Sensitivity-label badges on governed files and folders.',
  autoStart: true,
  optional: [IDefaultFileBrowser, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    browser: IDefaultFileBrowser | null,
    settingRegistry: ISettingRegistry | null
  ) => {
    if (!browser) {
      return;
    }
    const badges = new FileBadges({
      browser,
      request: makeRequest(app),
      enabled: false // until the settings say otherwise
    });
    watchSettings(settingRegistry, settings => {
      badges.enabled = settings.showFileBadges;
    });
    // A catalog reload may relabel anything: forget the cached answers.
    auditEvents(app)?.connect((_, event: EventEmission) => {
      if (
        event.schema_id === AUDIT_EVENT_SCHEMA_ID &&
        event.event_type === 'catalog_reload'
      ) {
        forgetLabels();
        badges.clearCache();
        void badges.update();
      }
    });
  }
};

/** The governance indicator in every notebook toolbar, and its dialog. */
const notebookPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:notebook-governance',
  description:
    "A notebook toolbar item with the data its kernel read, and a purpose picker.",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);
    const indicators = new WeakMap<NotebookPanel, GovernanceIndicator>();
    const onRequestAccess = (panel: NotebookPanel) => (dataset: string) => {
      void app.commands.execute(CommandIDs.requestAccess, {
        dataset,
        notebook: panel.context.path,
        kernel_id: panel.sessionContext.session?.kernel?.id ?? null
      });
    };

    const addIndicator = (panel: NotebookPanel) => {
      const indicator: GovernanceIndicator = new GovernanceIndicator({
        sessionContext: panel.sessionContext,
        request,
        notebook: panel.content,
        events: auditEvents(app),
        executed: NotebookActions.executed,
        onClick: () => {
          void openGovernanceDialog(indicator, {
            onRequestAccess: onRequestAccess(panel)
          });
        }
      });
      indicators.set(panel, indicator);
      // Next to the kernel name, where people look for what the kernel does.
      const names = Array.from(panel.toolbar.names());
      const at = names.indexOf('kernelName');
      panel.toolbar.insertItem(
        at >= 0 ? at : names.length,
        TOOLBAR_ITEM_NAME,
        indicator
      );
      panel.disposed.connect(() => indicator.dispose());
    };
    // Panels opened before this plugin activated, then every new one.
    tracker.forEach(addIndicator);
    tracker.widgetAdded.connect((_, panel) => addIndicator(panel));

    app.commands.addCommand(CommandIDs.showNotebookGovernance, {
      label: 'Show Notebook Data Governance',
      caption: 'The data this notebook’s kernel read, its denials and its purpose',
      isEnabled: () => tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        const indicator = panel ? indicators.get(panel) : undefined;
        if (panel && indicator) {
          await openGovernanceDialog(indicator, {
            onRequestAccess: onRequestAccess(panel)
          });
        }
      }
    });
    palette?.addItem({
      command: CommandIDs.showNotebookGovernance,
      category: CATEGORY
    });
  }
};

/** The catalog in the left sidebar. */
const catalogPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:catalog',
  description: 'The data catalog: labels, stewards, what you may do, read snippets.',
  autoStart: true,
  optional: [ICommandPalette, ILabShell, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null
  ) => {
    const panel = new CatalogPanel({
      request: makeRequest(app),
      onRequestAccess: dataset => {
        void app.commands.execute(CommandIDs.requestAccess, { dataset });
      }
    });
    panel.title.icon = guardShieldIcon;
    app.shell.add(panel, 'left', { rank: 650 });
    // A catalog reload may change what is listed: refresh if it is on screen.
    auditEvents(app)?.connect((_, event: EventEmission) => {
      if (
        event.schema_id === AUDIT_EVENT_SCHEMA_ID &&
        event.event_type === 'catalog_reload' &&
        panel.isVisible
      ) {
        void panel.refresh();
      }
    });
    // Reopen the panel after a reload if it was open.
    restorer?.add(panel, CATALOG_PANEL_ID);

    app.commands.addCommand(CommandIDs.openCatalog, {
      label: 'Open the Data Catalog',
      caption: 'Datasets, labels, stewards and what you may do with them',
      icon: args => (args.isPalette ? undefined : guardShieldIcon),
      execute: () => {
        if (labShell) {
          labShell.expandLeft();
        }
        app.shell.activateById(CATALOG_PANEL_ID);
      }
    });
    palette?.addItem({ command: CommandIDs.openCatalog, category: CATEGORY });
  }
};

/** Notifications of denied reads, and the Request access command. */
const denialsPlugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-guard:denials',
  description: 'Explains denied reads and lets you ask the steward for access.',
  autoStart: true,
  optional: [INotebookTracker, ISettingRegistry, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker | null,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null
  ) => {
    const request = makeRequest(app);

    app.commands.addCommand(CommandIDs.requestAccess, {
      label: args =>
        args?.dataset
          ? `Request Access to ${args.dataset as string}`
          : 'Request Access to a Dataset…',
      caption: 'Ask the data steward for access, with your reason',
      execute: async args => {
        let dataset = typeof args?.dataset === 'string' ? args.dataset : '';
        if (!dataset) {
          // From the palette: ask which dataset.
          const answer = await showDialog({
            title: 'Request access to which dataset?',
            body: new DatasetNameBody(),
            buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Next' })]
          });
          dataset = answer.button.accept ? (answer.value ?? '').trim() : '';
          if (!dataset) {
            return null;
          }
        }
        return requestAccess(request, {
          ...(args as unknown as Partial<IRequestAccessArgs>),
          dataset
        });
      }
    });
    palette?.addItem({ command: CommandIDs.requestAccess, category: CATEGORY });

    if (!tracker) {
      return;
    }
    const watcher = new DenialWatcher({ request, commands: app.commands });
    watchSettings(settingRegistry, settings => {
      watcher.enabled = settings.notifyOnDenial;
    });
    const watchPanel = (panel: NotebookPanel) => {
      const watch = watcher.watch(panel.sessionContext, () => panel.context.path);
      panel.disposed.connect(() => watch.dispose());
    };
    tracker.forEach(watchPanel);
    tracker.widgetAdded.connect((_, panel) => watchPanel(panel));
  }
};

/** A one-field body: the dataset name (Request access from the palette). */
class DatasetNameBody extends Widget {
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

const plugins: JupyterFrontEndPlugin<any>[] = [
  statusPlugin,
  fileBadgesPlugin,
  notebookPlugin,
  catalogPlugin,
  denialsPlugin,
  auditViewerPlugin,
  exportReviewPlugin
];

export default plugins;
