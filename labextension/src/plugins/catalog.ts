/** Catalog plugin: the data catalog in the left sidebar, and the command that opens it. */
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';

import { CatalogPanel } from '../components/catalogPanel';
import { guardShieldIcon } from '../components/icons';
import {
  AUDIT_EVENT_SCHEMA_ID,
  CATALOG_PANEL_ID,
  CommandIDs,
  EventEmission
} from '../tokens';
import { CATEGORY, auditEvents, makeRequest } from './common';

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

export { catalogPlugin };
export default catalogPlugin;
