import { Signal } from '@lumino/signaling';

import { readGuardSettings, watchGuardSettings } from '../guardSettings';
import { DEFAULT_SETTINGS } from '../tokens';

describe('readGuardSettings', () => {
  it('takes well-typed values and falls back to the defaults', () => {
    const values: Record<string, unknown> = { auditPageSize: 500, reviewExports: 'yes' };
    expect(readGuardSettings(key => values[key])).toEqual({ ...DEFAULT_SETTINGS, auditPageSize: 500 });
  });
});

describe('watchGuardSettings', () => {
  it('uses the defaults without a registry', () => {
    expect(watchGuardSettings(null).current).toEqual(DEFAULT_SETTINGS);
  });

  it('loads the settings of the main plugin and follows changes', async () => {
    const values: Record<string, unknown> = { reviewExports: false };
    const settings: any = { get: (key: string) => ({ composite: values[key] }) };
    settings.changed = new Signal<any, void>(settings); // the sender is the settings
    const registry = { load: jest.fn(async () => settings) };
    const onChange = jest.fn();
    const handle = watchGuardSettings(registry as any, onChange);
    expect(handle.current.reviewExports).toBe(true);
    await new Promise(r => setTimeout(r, 0));
    expect(registry.load).toHaveBeenCalledWith('jupyter-guard:plugin');
    expect(handle.current.reviewExports).toBe(false);
    values.auditPageSize = 1000;
    settings.changed.emit();
    expect(handle.current.auditPageSize).toBe(1000);
    expect(onChange).toHaveBeenCalledTimes(2);
  });
});
