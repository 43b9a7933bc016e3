import { VirtualList } from '../../components/virtualList';

/** jsdom does no layout: give the list a viewport and a scroll position. */
function viewport(list: VirtualList, height: number): { scrollTo: (top: number) => void } {
  let top = 0;
  Object.defineProperty(list.node, 'clientHeight', { configurable: true, get: () => height });
  Object.defineProperty(list.node, 'scrollTop', {
    configurable: true,
    get: () => top,
    set: (value: number) => {
      top = value;
    }
  });
  return {
    scrollTo: (value: number) => {
      top = value;
      list.node.dispatchEvent(new Event('scroll'));
    }
  };
}

function makeList(options: Partial<VirtualList.IOptions> = {}) {
  const renderRow = jest.fn((row: HTMLElement, index: number) => {
    row.textContent = `row ${index}`;
  });
  const createRow = jest.fn(() => document.createElement('div'));
  const list = new VirtualList({
    rowHeight: 20,
    overscan: 5,
    createRow,
    renderRow,
    ...options
  });
  return { list, renderRow, createRow };
}

function rowsInDom(list: VirtualList): HTMLElement[] {
  return Array.from(list.node.querySelectorAll<HTMLElement>('.jp-guard-vlist-row'));
}

describe('VirtualList', () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  it('puts only the visible rows plus the overscan in the DOM', () => {
    const { list } = makeList();
    viewport(list, 200); // 10 rows visible
    list.count = 100_000;
    const rows = rowsInDom(list);
    // rows 0..9 visible, 5 overscan below (none above at the top)
    expect(rows).toHaveLength(15);
    expect(rows.map(r => Number(r.dataset.index)).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 15 }, (_, i) => i)
    );
    expect(rows[3].style.transform).toBe(`translateY(${Number(rows[3].dataset.index) * 20}px)`);
    list.dispose();
  });

  it('gives the spacer the height of all rows (plus the footer row)', () => {
    const { list } = makeList();
    viewport(list, 200);
    list.count = 1234;
    const spacer = list.node.querySelector<HTMLElement>('.jp-guard-vlist-spacer')!;
    expect(spacer.style.height).toBe(`${1234 * 20 + 20}px`);
    expect(list.footer.style.transform).toBe(`translateY(${1234 * 20}px)`);
    list.count = 10;
    expect(spacer.style.height).toBe(`${10 * 20 + 20}px`);
    list.dispose();
  });

  it('recycles row elements when scrolling and keeps the DOM small', () => {
    jest.useFakeTimers();
    const { list, createRow, renderRow } = makeList();
    const vp = viewport(list, 200);
    list.count = 10_000;
    const before = new Set(rowsInDom(list));
    expect(createRow).toHaveBeenCalledTimes(15);

    vp.scrollTo(5000 * 20); // far away: rows 4995..5014 (+ overscan)
    jest.advanceTimersByTime(50); // one animation frame
    const after = rowsInDom(list);
    expect(after).toHaveLength(20); // 10 visible + 5 above + 5 below
    // the elements are recycled, only the 5 extra rows are new
    expect(createRow).toHaveBeenCalledTimes(20);
    expect(after.filter(r => before.has(r))).toHaveLength(15);
    const indices = after.map(r => Number(r.dataset.index)).sort((a, b) => a - b);
    expect(indices[0]).toBe(4995);
    expect(indices[indices.length - 1]).toBe(5014);
    expect(after.find(r => r.dataset.index === '5000')!.textContent).toBe('row 5000');
    // renders are O(visible rows), not O(count)
    expect(renderRow.mock.calls.length).toBeLessThan(40);
    list.dispose();
  });

  it('throttles scroll handling to one render per animation frame', () => {
    jest.useFakeTimers();
    const { list, renderRow } = makeList();
    const vp = viewport(list, 200);
    list.count = 10_000;
    renderRow.mockClear();
    vp.scrollTo(100 * 20);
    vp.scrollTo(101 * 20);
    vp.scrollTo(102 * 20);
    expect(renderRow).not.toHaveBeenCalled(); // nothing before the frame
    jest.advanceTimersByTime(50);
    // one pass at the last position: rows 97..116, each rendered once
    const rendered = renderRow.mock.calls.map(call => call[1]).sort((a, b) => a - b);
    expect(rendered).toEqual(Array.from({ length: 20 }, (_, i) => 97 + i));
    list.dispose();
  });

  it('calls onNearEnd once per row count when scrolled near the end', () => {
    jest.useFakeTimers();
    const onNearEnd = jest.fn();
    const { list } = makeList({ nearEndRows: 20, onNearEnd });
    const vp = viewport(list, 200);
    list.count = 200;
    expect(onNearEnd).not.toHaveBeenCalled(); // rows 0..9 of 200
    vp.scrollTo(150 * 20); // last visible 159 >= 200 - 1 - 20? no
    jest.advanceTimersByTime(50);
    expect(onNearEnd).not.toHaveBeenCalled();
    vp.scrollTo(175 * 20); // last visible 184: near the end
    jest.advanceTimersByTime(50);
    expect(onNearEnd).toHaveBeenCalledTimes(1);
    vp.scrollTo(180 * 20);
    jest.advanceTimersByTime(50);
    vp.scrollTo(190 * 20);
    jest.advanceTimersByTime(50);
    expect(onNearEnd).toHaveBeenCalledTimes(1); // still once for this count

    list.count = 400; // the next page arrived
    vp.scrollTo(390 * 20);
    jest.advanceTimersByTime(50);
    expect(onNearEnd).toHaveBeenCalledTimes(2);
    list.dispose();
  });

  it('selects rows by click and arrow keys, with aria-selected', () => {
    const { list } = makeList();
    viewport(list, 200);
    list.count = 50;
    const selected: number[] = [];
    list.selectionChanged.connect((_, index) => selected.push(index));
    const row3 = rowsInDom(list).find(r => r.dataset.index === '3')!;
    row3.click();
    expect(list.selectedIndex).toBe(3);
    expect(row3.getAttribute('aria-selected')).toBe('true');

    list.node.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowDown', bubbles: true }));
    expect(list.selectedIndex).toBe(4);
    expect(row3.getAttribute('aria-selected')).toBe('false');
    list.node.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowUp', bubbles: true }));
    list.node.dispatchEvent(new KeyboardEvent('keydown', { key: 'ArrowUp', bubbles: true }));
    expect(list.selectedIndex).toBe(2);
    list.node.dispatchEvent(new KeyboardEvent('keydown', { key: 'End', bubbles: true }));
    expect(list.selectedIndex).toBe(49);
    expect(list.node.scrollTop).toBe(50 * 20 - 200); // scrolled into view
    expect(selected).toEqual([3, 4, 3, 2, 49]);
    list.dispose();
  });

  it('drops the selection and the rows when the count shrinks', () => {
    const { list } = makeList();
    viewport(list, 200);
    list.count = 50;
    list.select(30);
    list.count = 0;
    expect(list.selectedIndex).toBe(-1);
    expect(rowsInDom(list)).toHaveLength(0);
    list.dispose();
  });
});
