/**
 * The sensitivity-label badge, shared by the file browser, the catalog panel
 * and the notebook governance dialog, so a label looks the same everywhere.
 *
 * A badge always carries the label's name as text: colour only reinforces it
 * (never colour alone). Its background is the catalog's colour for the label
 * with black or white text, whichever contrasts more; a label without a
 * colour gets the palette entry of its rank (CSS variables in base.css, which
 * also carry dark-theme text colours).
 */

import type { IContact, IGuardLabel } from '../tokens';

export const BADGE_CLASS = 'jp-guard-badge';

/** Number of rank colours in base.css (`.jp-guard-label-rank-0` ... `-5`). */
export const PALETTE_SIZE = 6;

/** What a badge shows. */
export interface IBadgeInfo {
  label: string;
  /** 0 is the least sensitive. */
  rank: number;
  /** CSS colour from the catalog, or '' / undefined: use the rank palette. */
  color?: string;
  dataset?: string | null;
  /** The dataset's description. */
  description?: string;
  steward?: IContact | null;
  /** Purposes the dataset may be used for; empty: any. */
  purposes?: string[];
  /** A folder that holds governed data rather than being a location itself. */
  contains?: boolean;
}

// Labels seen in server answers: lets views that only know a label's name
// (the kernel governance lists name and rank) use the catalog's colour too.
const knownLabels = new Map<string, IGuardLabel>();

/** Remember the catalog's labels (from any answer that lists them). */
export function rememberLabels(labels: readonly IGuardLabel[] | undefined): void {
  for (const label of labels ?? []) {
    knownLabels.set(label.name, label);
  }
}

/** Forget the remembered labels (tests; a catalog reload). */
export function forgetLabels(): void {
  knownLabels.clear();
}

/** A remembered label, or undefined. */
export function knownLabel(name: string): IGuardLabel | undefined {
  return knownLabels.get(name);
}

/** `Dana Steward <dana@example.org>`, or `Dana Steward` without an email. */
export function formatContact(contact: IContact | null | undefined): string {
  if (!contact) {
    return 'none listed';
  }
  const email = contact.email ? ` <${contact.email}>` : '';
  return `${contact.name}${email}`.trim();
}

/** The badge text: the label, or `<label> inside` for a folder holding governed data. */
export function badgeText(info: IBadgeInfo): string {
  return info.contains ? `${info.label} inside` : info.label;
}

/** The badge tooltip: dataset, label, steward, purposes (and why a folder has one). */
export function badgeTitle(info: IBadgeInfo): string {
  const lines: string[] = [];
  if (info.contains) {
    lines.push(
      `Contains governed data; most sensitive: ${info.dataset ?? 'unknown'} (${info.label})`
    );
  }
  if (info.dataset) {
    lines.push(
      info.description
        ? `Dataset: ${info.dataset} — ${info.description}`
        : `Dataset: ${info.dataset}`
    );
  }
  lines.push(`Label: ${info.label}`);
  if (info.steward !== undefined) {
    lines.push(`Steward: ${formatContact(info.steward)}`);
  }
  if (info.purposes !== undefined) {
    lines.push(
      `Purposes: ${info.purposes.length > 0 ? info.purposes.join(', ') : 'any'}`
    );
  }
  return lines.join('\n');
}

/** The palette entry of a rank: ranks past the palette share its last (most sensitive) colour. */
export function paletteIndex(rank: number): number {
  if (!Number.isFinite(rank) || rank < 0) {
    return 0;
  }
  return Math.min(Math.floor(rank), PALETTE_SIZE - 1);
}

/** `#rgb`, `#rrggbb`, `#rrggbbaa`, `rgb()` / `rgba()` as [r, g, b] (0-255), or null. */
export function parseColor(css: string): [number, number, number] | null {
  const text = css.trim().toLowerCase();
  let match = /^#([0-9a-f]{3,4})$/.exec(text);
  if (match) {
    const [r, g, b] = match[1].split('').map(c => parseInt(c + c, 16));
    return [r, g, b];
  }
  match = /^#([0-9a-f]{6})([0-9a-f]{2})?$/.exec(text);
  if (match) {
    const hex = match[1];
    return [0, 2, 4].map(i => parseInt(hex.slice(i, i + 2), 16)) as [
      number,
      number,
      number
    ];
  }
  match = /^rgba?\(\s*([\d.]+)[\s,]+([\d.]+)[\s,]+([\d.]+)/.exec(text);
  if (match) {
    const rgb = [match[1], match[2], match[3]].map(v =>
      Math.max(0, Math.min(255, Math.round(parseFloat(v))))
    );
    return rgb as [number, number, number];
  }
  return null;
}

/** WCAG relative luminance of an sRGB colour. */
export function relativeLuminance([r, g, b]: [number, number, number]): number {
  const channel = (v: number) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
  };
  return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
}

/** WCAG contrast ratio of two luminances (1 to 21). */
export function contrastRatio(a: number, b: number): number {
  const [hi, lo] = a > b ? [a, b] : [b, a];
  return (hi + 0.05) / (lo + 0.05);
}

/** Black or white, whichever is more readable on `background`; null if it cannot be parsed. */
export function textColorFor(background: string): '#000000' | '#ffffff' | null {
  const rgb = parseColor(background);
  if (!rgb) {
    return null;
  }
  const lum = relativeLuminance(rgb);
  return contrastRatio(lum, 0) >= contrastRatio(lum, 1) ? '#000000' : '#ffffff';
}

/**
 * Named colours ("teal") cannot be parsed here; let the browser compute them.
 * Returns `rgb(...)` in a browser, or the input unchanged where it cannot.
 */
function resolveColor(css: string, doc: Document): string {
  if (parseColor(css) || !doc.body || typeof getComputedStyle !== 'function') {
    return css;
  }
  // Cached: a listing can hold hundreds of badges of the same few labels.
  const cached = resolvedColors.get(css);
  if (cached !== undefined) {
    return cached;
  }
  const probe = doc.createElement('span');
  probe.style.color = css;
  let resolved = css;
  if (probe.style.color) {
    doc.body.appendChild(probe);
    resolved = getComputedStyle(probe).color || css;
    probe.remove();
  }
  resolvedColors.set(css, resolved);
  return resolved;
}

const resolvedColors = new Map<string, string>();

/** The colours of a badge: an explicit background and text colour, or the palette class. */
export interface IBadgeColors {
  /** Inline background, or null: the rank palette's. */
  background: string | null;
  /** Inline text colour, or null: the rank palette's. */
  color: string | null;
  palette: number;
}

/** Colour choice: the catalog's colour when it can be made readable, else the rank palette. */
export function badgeColors(info: IBadgeInfo, doc: Document = document): IBadgeColors {
  const palette = paletteIndex(info.rank);
  const wanted = info.color || knownLabel(info.label)?.color || '';
  if (wanted) {
    const text = textColorFor(resolveColor(wanted, doc));
    if (text) {
      return { background: wanted, color: text, palette };
    }
  }
  // No colour, or one whose contrast we cannot check: the palette is known readable.
  return { background: null, color: null, palette };
}

/** A string that changes when anything the badge shows changes (to skip needless DOM work). */
export function badgeKey(info: IBadgeInfo): string {
  return JSON.stringify([
    info.label,
    info.rank,
    info.color ?? '',
    info.dataset ?? '',
    info.description ?? '',
    info.steward ?? null,
    info.purposes ?? null,
    !!info.contains
  ]);
}

/**
 * `span.jp-guard-badge[data-guard-label][data-guard-dataset]`, text = label,
 * `.jp-mod-contains` for folders holding governed data.
 */
export function createBadge(info: IBadgeInfo, doc: Document = document): HTMLSpanElement {
  const node = doc.createElement('span');
  node.className = BADGE_CLASS;
  const colors = badgeColors(info, doc);
  node.classList.add(`jp-guard-label-rank-${colors.palette}`);
  if (colors.background && colors.color) {
    node.style.backgroundColor = colors.background;
    node.style.color = colors.color;
    node.classList.add('jp-mod-custom-color');
  }
  if (info.contains) {
    node.classList.add('jp-mod-contains');
  }
  node.dataset.guardLabel = info.label;
  if (info.dataset) {
    node.dataset.guardDataset = info.dataset;
  }
  node.dataset.guardRank = String(info.rank);
  node.dataset.guardKey = badgeKey(info);
  node.textContent = badgeText(info);
  node.title = badgeTitle(info);
  return node;
}

/** A badge for a label known only by name and rank (colour from the remembered labels). */
export function labelOnlyBadge(
  label: string,
  rank: number,
  color?: string,
  doc: Document = document
): HTMLSpanElement {
  const known = knownLabel(label);
  const node = createBadge(
    { label, rank, color: color || known?.color || '' },
    doc
  );
  node.title = known?.description
    ? `Label: ${label} — ${known.description}`
    : `Label: ${label}`;
  return node;
}
