// Sortable, filterable tables for the negbench leaderboard; no dependencies,
// works from file://.  A header cell sorts its column (click again to reverse);
// a cell's data-v attribute, when present, is the value sorted on (numbers
// sort as numbers, empty values last).  <input data-filter="TABLE-ID"> hides
// the rows of that table that do not contain every typed word.
"use strict";
(function () {
  function value(cell) {
    var raw = cell.hasAttribute("data-v") ? cell.getAttribute("data-v") : cell.textContent.trim();
    if (raw === "") return { empty: true, num: NaN, text: "" };
    var num = Number(raw);
    return { empty: false, num: num, text: raw.toLowerCase() };
  }
  function compare(a, b) {
    if (a.empty || b.empty) return a.empty === b.empty ? 0 : a.empty ? 1 : -1;
    if (!isNaN(a.num) && !isNaN(b.num)) return a.num - b.num;
    return a.text < b.text ? -1 : a.text > b.text ? 1 : 0;
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, i) { return { row: row, v: value(row.cells[index]), i: i }; });
    keyed.sort(function (a, b) {
      var c = compare(a.v, b.v);
      if (a.v.empty || b.v.empty) return c || a.i - b.i;  // empty cells stay last
      return (ascending ? c : -c) || a.i - b.i;
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    keyed.forEach(function (k) { body.appendChild(k.row); });
  }
  function filter(table, query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var text = row.textContent.toLowerCase();
      row.hidden = !words.every(function (w) { return text.indexOf(w) !== -1; });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(function (table) {
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        th.tabIndex = 0;
        th.title = "sort by this column";
        th.addEventListener("click", function () { sortBy(table, index, th); });
        th.addEventListener("keydown", function (e) { if (e.key === "Enter") sortBy(table, index, th); });
      });
    });
    document.querySelectorAll("input[data-filter]").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-filter"));
      if (table) input.addEventListener("input", function () { filter(table, input.value); });
    });
  });
})();
