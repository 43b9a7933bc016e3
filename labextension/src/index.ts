/**
 * The jupyter-guard JupyterLab extension: the list of its plugins, one module
 * each under plugins/. Nothing imports this module.
 */
import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import auditViewerPlugin from './plugins/audit';
import catalogPlugin from './plugins/catalog';
import denialsPlugin from './plugins/denials';
import exportReviewPlugin from './plugins/exportReview';
import fileBadgesPlugin from './plugins/fileBadges';
import notebookPlugin from './plugins/notebookIndicator';
import statusPlugin from './plugins/status';

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
