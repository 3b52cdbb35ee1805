// Cells updated in place: a cell's text is written only when it changes, and a change flashes the
// cell (green up, red down) for about half a second. No re-render, no forced layout.

export class Flasher {
  constructor(period = 350) {
    this.current = new Set();
    this.previous = new Set();
    setInterval(() => this.fade(), period);
  }

  flash(cell, direction) {
    cell.classList.remove(direction === "up" ? "down" : "up");
    cell.classList.add(direction);
    this.previous.delete(cell);
    this.current.add(cell);
  }

  // Cells flashed two periods ago lose their colour (CSS fades it out).
  fade() {
    for (const cell of this.previous) cell.classList.remove("up", "down");
    this.previous = this.current;
    this.current = new Set();
  }
}

export function cell(className) {
  const td = document.createElement("td");
  td.className = className;
  return td;
}

// Write ``row``'s values into ``cells`` (field → td); ``flasher`` null paints without flashing.
export function paint(cells, row, columns, flasher) {
  for (const column of columns) {
    const td = cells[column.field];
    if (td === undefined) continue;
    const value = row[column.field];
    const text = column.format(value);
    if (td.text === text) continue;
    const before = td.value;
    td.textContent = text;
    td.text = text;
    td.value = value;
    if (flasher && typeof value === "number" && typeof before === "number" && value !== before) {
      flasher.flash(td, value > before ? "up" : "down");
    }
  }
  markCrossed(cells, row.crossed === true);
}

// A crossed book (bid above ask, both quoted: Bybit's, or a fault upstream) is shown as it is, and marked.
const CROSSED_TITLE = "Crossed book: the bid is above the ask";

function markCrossed(cells, crossed) {
  for (const field of ["bid_price", "ask_price"]) {
    const td = cells[field];
    if (td === undefined || td.crossed === crossed) continue;
    td.crossed = crossed;
    td.classList.toggle("crossed", crossed);
    td.title = crossed ? CROSSED_TITLE : "";
  }
}
