/**
 * The user's jupyter_guard preferences (schema/plugin.json, settings of
 * PLUGIN_ID) for plugins that are not the main plugin: loaded through the
 * optional ISettingRegistry, DEFAULT_SETTINGS until (or unless) they load.
 */
import type { ISettingRegistry } from '@jupyterlab/settingregistry';

import { DEFAULT_SETTINGS, IGuardSettings, PLUGIN_ID } from './tokens';

/** The composite settings, each value type-checked against the default. */
export function readGuardSettings(
  get: (key: keyof IGuardSettings) => unknown
): IGuardSettings {
  const out = { ...DEFAULT_SETTINGS } as { [key: string]: unknown };
  for (const key of Object.keys(DEFAULT_SETTINGS) as (keyof IGuardSettings)[]) {
    const value = get(key);
    if (typeof value === typeof DEFAULT_SETTINGS[key]) {
      out[key] = value;
    }
  }
  return out as unknown as IGuardSettings;
}

/** Live settings: `current` follows the user's changes. */
export interface IGuardSettingsHandle {
  readonly current: IGuardSettings;
}

/**
 * Load PLUGIN_ID's settings and keep `current` up to date; `onChange` runs
 * after the load and after every change.
 */
export function watchGuardSettings(
  registry: ISettingRegistry | null,
  onChange?: (settings: IGuardSettings) => void
): IGuardSettingsHandle {
  const handle = { current: { ...DEFAULT_SETTINGS } };
  if (!registry) {
    return handle;
  }
  const apply = (settings: ISettingRegistry.ISettings) => {
    handle.current = readGuardSettings(key => settings.get(key).composite);
    onChange?.(handle.current);
  };
  registry
    .load(PLUGIN_ID)
    .then(settings => {
      apply(settings);
      settings.changed.connect(apply);
    })
    .catch(reason => {
      console.error('jupyter-guard: failed to load settings', reason);
    });
  return handle;
}
