// The provenance graph page: the SVG is drawn by the server (Graphviz); this script shows a
// node's attributes when pointed at and re-centres the graph on a clicked node, keeping the
// depth/direction controls.  No resource from another host.
(function () {
  "use strict";
  var nodes = JSON.parse(document.getElementById("prov-nodes").textContent);
  var controls = document.getElementById("prov-controls");
  var base = document.querySelector("header nav a").getAttribute("href").replace(/\/$/, "");
  var title = document.getElementById("prov-details-title");
  var kind = document.getElementById("prov-details-kind");
  var table = document.getElementById("prov-attributes");

  function idOf(node) {
    var a = node.querySelector("a");
    if (!a) { return null; }
    return a.getAttribute("xlink:title") || a.getAttribute("title");
  }

  function show(id) {
    var n = nodes[id];
    if (!n) { return; }
    title.textContent = n.label;
    kind.textContent = n.kind + " · " + id;
    while (table.firstChild) { table.removeChild(table.firstChild); }
    n.attributes.forEach(function (pair) {
      var tr = document.createElement("tr");
      var th = document.createElement("th");
      var td = document.createElement("td");
      th.textContent = pair[0];
      td.textContent = String(pair[1]);
      tr.appendChild(th); tr.appendChild(td); table.appendChild(tr);
    });
  }

  function pageUrl(id) {
    var query = new URLSearchParams(new FormData(controls));
    var params = new URLSearchParams();
    query.forEach(function (value, key) { params.set(key, value); });  // checkbox wins over hidden
    return base + "/" + encodeURI(id) + "?" + params.toString();
  }

  var drawn = 0;
  document.querySelectorAll("#prov-graph g.node").forEach(function (node) {
    var id = idOf(node);
    if (!id) { return; }  // the points of n-ary relations
    drawn += 1;
    node.setAttribute("data-prov-id", id);
    node.addEventListener("mouseenter", function () { show(id); });
    node.addEventListener("click", function (event) {
      event.preventDefault();
      show(id);
      window.location.assign(pageUrl(id));
    });
  });
  controls.querySelectorAll("select").forEach(function (select) {
    select.addEventListener("change", function () { controls.submit(); });
  });
  document.body.setAttribute("data-drawn-nodes", String(drawn));
  document.body.setAttribute("data-ready", "true");
}());
