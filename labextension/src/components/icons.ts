import { LabIcon } from '@jupyterlab/ui-components';

/**
 * A shield with a check mark: the catalog sidebar tab. `jp-icon3` lets the
 * theme colour it (light and dark).
 */
const shieldSvg = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <path class="jp-icon3" fill="#616161" d="M12 1.5 3.5 4.8v6.1c0 5.2 3.6 10 8.5 11.6 4.9-1.6 8.5-6.4 8.5-11.6V4.8L12 1.5zm0 2.2 6.5 2.5v4.7c0 4.2-2.8 8.1-6.5 9.5-3.7-1.4-6.5-5.3-6.5-9.5V6.2L12 3.7z"/>
  <path class="jp-icon3" fill="#616161" d="m10.6 15.6-3.5-3.5 1.4-1.4 2.1 2.1 4.9-4.9 1.4 1.4-6.3 6.3z"/>
</svg>`;

export const guardShieldIcon = new LabIcon({
  name: 'jupyter-guard:shield',
  svgstr: shieldSvg
});
