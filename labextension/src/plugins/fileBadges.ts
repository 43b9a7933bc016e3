/** File-browser badges plugin: sensitivity-label badges in the default file browser. */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { ISettingRegistry } from '@jupyterlab/settingregistry';

import { FileBadges } from '../components/fileBadges';
import { forgetLabels } from '../components/labelBadge';
import { AUDIT_EVENT_SCHEMA_ID, EventEmission } from '../tokens';
import { auditEvents, makeRequest, watchSettings } from './common';

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

export { fileBadgesPlugin };
export default fileBadgesPlugin;
