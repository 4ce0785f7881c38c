// cards.js: every table's cells named by their column, for phones, where style.css shows each
// row as a card with the name before the value (a 9-column table does not fit 390 px). Rows
// come and go as views render, so cells are labelled whenever rows are added, by any view.

// Label the body cells of `table` from its header row; a header read only by screen readers
// (a column of buttons) labels nothing.
function label(table) {
  const heads = table.tHead ? [...table.tHead.rows[0]?.cells ?? []] : [];
  if (!heads.length) return;
  const names = heads.map((th) => (th.querySelector('.sr-only') ? '' : th.textContent.trim()));
  for (const body of table.tBodies) {
    for (const row of body.rows) {
      let column = 0;
      for (const cell of row.cells) {
        const name = cell.colSpan === 1 ? names[column] : '';
        if (name && cell.tagName === 'TD') cell.dataset.label = name;
        column += cell.colSpan;
      }
    }
  }
}

// Label every table in root now and whenever rows are added to one.
export function labelTables(root = document.body) {
  for (const t of root.querySelectorAll('table')) label(t);
  new MutationObserver((changes) => {
    const tables = new Set();
    for (const c of changes) {
      const inTable = c.target.closest?.('table');
      if (inTable) tables.add(inTable);
      for (const added of c.addedNodes) {
        if (added.nodeType !== 1) continue;
        if (added.tagName === 'TABLE') tables.add(added);
        for (const t of added.querySelectorAll('table')) tables.add(t);
      }
    }
    tables.forEach(label);
  }).observe(root, { childList: true, subtree: true });
}
