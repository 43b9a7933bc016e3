import {
  PALETTE_SIZE,
  badgeColors,
  badgeKey,
  badgeText,
  badgeTitle,
  contrastRatio,
  createBadge,
  forgetLabels,
  formatContact,
  IBadgeInfo,
  labelOnlyBadge,
  paletteIndex,
  parseColor,
  relativeLuminance,
  rememberLabels,
  textColorFor
} from '../../components/labelBadge';

const patients: IBadgeInfo = {
  label: 'restricted',
  rank: 3,
  color: '',
  dataset: 'patients',
  description: 'Patient registry extract',
  steward: { name: 'Dana Steward', email: 'dana@example.org' },
  purposes: ['treatment-research', 'quality-audit'],
  contains: false
};

afterEach(() => forgetLabels());

describe('formatContact', () => {
  it('shows name and email', () => {
    expect(formatContact({ name: 'Dana Steward', email: 'dana@example.org' })).toBe(
      'Dana Steward <dana@example.org>'
    );
  });
  it('shows the name alone without an email, and says when there is none', () => {
    expect(formatContact({ name: 'Ops Team', email: '' })).toBe('Ops Team');
    expect(formatContact(null)).toBe('none listed');
  });
});

describe('badgeText', () => {
  it('is the label name for a location', () => {
    expect(badgeText(patients)).toBe('restricted');
  });
  it('says "inside" for a folder that holds governed data', () => {
    expect(badgeText({ ...patients, contains: true })).toBe('restricted inside');
  });
});

describe('badgeTitle', () => {
  it('lists dataset, label, steward and purposes', () => {
    expect(badgeTitle(patients).split('\n')).toEqual([
      'Dataset: patients — Patient registry extract',
      'Label: restricted',
      'Steward: Dana Steward <dana@example.org>',
      'Purposes: treatment-research, quality-audit'
    ]);
  });

  it('says "any" when no purpose is required', () => {
    expect(badgeTitle({ ...patients, purposes: [] })).toContain('Purposes: any');
  });

  it('explains a folder that contains governed data first', () => {
    const lines = badgeTitle({ ...patients, contains: true }).split('\n');
    expect(lines[0]).toBe(
      'Contains governed data; most sensitive: patients (restricted)'
    );
    expect(lines).toContain('Label: restricted');
  });

  it('leaves the description out when there is none', () => {
    expect(badgeTitle({ ...patients, description: '' })).toContain('Dataset: patients\n');
  });
});

describe('colours', () => {
  it('parses hex and rgb colours', () => {
    expect(parseColor('#fff')).toEqual([255, 255, 255]);
    expect(parseColor('#d9822b')).toEqual([217, 130, 43]);
    expect(parseColor('#D9822BFF')).toEqual([217, 130, 43]);
    expect(parseColor('rgb(10, 20, 30)')).toEqual([10, 20, 30]);
    expect(parseColor('rgba(10 20 30 / 50%)')).toEqual([10, 20, 30]);
    expect(parseColor('not a colour')).toBeNull();
  });

  it('computes WCAG contrast', () => {
    const white = relativeLuminance([255, 255, 255]);
    const black = relativeLuminance([0, 0, 0]);
    expect(contrastRatio(white, black)).toBeCloseTo(21, 5);
    expect(contrastRatio(black, black)).toBe(1);
  });

  it('picks black text on light colours and white on dark ones', () => {
    expect(textColorFor('#ffeb3b')).toBe('#000000'); // yellow
    expect(textColorFor('#d9822b')).toBe('#000000'); // the catalog's orange
    expect(textColorFor('#b3261e')).toBe('#ffffff'); // dark red
    expect(textColorFor('#000080')).toBe('#ffffff'); // navy
    expect(textColorFor('nonsense')).toBeNull();
  });

  it('maps ranks to the palette and clamps ranks past it', () => {
    expect(paletteIndex(0)).toBe(0);
    expect(paletteIndex(3)).toBe(3);
    expect(paletteIndex(17)).toBe(PALETTE_SIZE - 1);
    expect(paletteIndex(-1)).toBe(0);
    expect(paletteIndex(NaN)).toBe(0);
  });

  it("uses the catalog's colour with readable text", () => {
    expect(badgeColors({ ...patients, color: '#d9822b' })).toEqual({
      background: '#d9822b',
      color: '#000000',
      palette: 3
    });
  });

  it("uses the rank palette when the label has no colour", () => {
    expect(badgeColors(patients)).toEqual({ background: null, color: null, palette: 3 });
  });

  it('falls back to the palette for a colour whose contrast cannot be checked', () => {
    expect(badgeColors({ ...patients, color: 'var(--x)' })).toEqual({
      background: null,
      color: null,
      palette: 3
    });
  });

  it('uses a remembered label colour when the caller has none', () => {
    rememberLabels([{ name: 'restricted', rank: 3, color: '#000080', description: '' }]);
    expect(badgeColors(patients).background).toBe('#000080');
    expect(badgeColors(patients).color).toBe('#ffffff');
  });
});

describe('createBadge', () => {
  it('renders span.jp-guard-badge with label, dataset, text and title', () => {
    const node = createBadge(patients);
    expect(node.tagName).toBe('SPAN');
    expect(node.classList.contains('jp-guard-badge')).toBe(true);
    expect(node.getAttribute('data-guard-label')).toBe('restricted');
    expect(node.getAttribute('data-guard-dataset')).toBe('patients');
    expect(node.textContent).toBe('restricted');
    expect(node.title).toContain('Steward: Dana Steward <dana@example.org>');
    expect(node.classList.contains('jp-guard-label-rank-3')).toBe(true);
    expect(node.style.backgroundColor).toBe('');
  });

  it('sets an inline colour pair for a catalog colour', () => {
    const node = createBadge({ ...patients, color: '#ffeb3b' });
    expect(node.style.backgroundColor).toBe('rgb(255, 235, 59)');
    expect(node.style.color).toBe('rgb(0, 0, 0)');
    expect(node.classList.contains('jp-mod-custom-color')).toBe(true);
  });

  it('marks folders with jp-mod-contains and "inside" text', () => {
    const node = createBadge({ ...patients, contains: true });
    expect(node.classList.contains('jp-mod-contains')).toBe(true);
    expect(node.textContent).toBe('restricted inside');
  });

  it('carries a key that changes with what it shows', () => {
    const a = createBadge(patients);
    expect(a.dataset.guardKey).toBe(badgeKey(patients));
    expect(badgeKey({ ...patients, label: 'confidential' })).not.toBe(badgeKey(patients));
    expect(badgeKey({ ...patients, contains: true })).not.toBe(badgeKey(patients));
  });

  it('renders a label-only badge with the remembered description', () => {
    rememberLabels([
      { name: 'internal', rank: 1, color: '', description: 'Staff only' }
    ]);
    const node = labelOnlyBadge('internal', 1);
    expect(node.textContent).toBe('internal');
    expect(node.title).toBe('Label: internal — Staff only');
    expect(node.hasAttribute('data-guard-dataset')).toBe(false);
  });
});
