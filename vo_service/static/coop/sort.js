// Sort the comparison table by a column when its header is clicked (numbers as numbers,
// missing values last); a second click reverses the order.
document.querySelectorAll("table.sortable").forEach((table) => {
  table.querySelectorAll("th").forEach((header, index) => {
    header.addEventListener("click", () => {
      const body = table.tBodies[0];
      const ascending = header.dataset.order !== "asc";
      table.querySelectorAll("th").forEach((h) => delete h.dataset.order);
      header.dataset.order = ascending ? "asc" : "desc";
      const key = (row) => {
        const text = row.cells[index].dataset.value ?? row.cells[index].textContent.trim();
        const number = parseFloat(text);
        return Number.isNaN(number) ? text : number;
      };
      const rows = [...body.rows].sort((a, b) => {
        const x = key(a), y = key(b);
        if (x === "" || x === "-") return 1;
        if (y === "" || y === "-") return -1;
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
});
