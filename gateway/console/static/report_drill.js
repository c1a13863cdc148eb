/* The report page's drill-down (reports.js): the tickets behind a headline figure, bar, point or
 * heat-map cell, 50 a page, with export links and a link from each number to the ticket in the
 * desk. It asks /api/v1/reports/tickets with the page's filters plus the figure's own, so a list
 * is exactly as long as its figure. clickable() makes a figure's mark open it (report_charts.js
 * draws the marks); section() builds it, once, with what the page lends it.
 *
 * Same rule as console.js: names, subjects and category names go on the page with textContent.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, t = C.t, el = C.el, words = C.words;
  /* What is shown (null: nothing), and the page's filters(), categoryName(id),
     exportLinks(prefix, params, report) and link(id, key), given to section(). */
  var state = { drill: null, page: 1 };
  var host = null;

  function $(id) { return document.getElementById(id); }

  /* ``node`` as a button (click, Enter or space) that lists the tickets behind ``drill``. */
  function clickable(node, drill, label) {
    node.setAttribute("tabindex", "0");
    node.setAttribute("role", "button");
    node.setAttribute("aria-label", label);
    node.classList.add("drillable");
    node.addEventListener("click", function () { showDrill(Object.assign({ label: label }, drill), 1); });
    node.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); showDrill(Object.assign({ label: label }, drill), 1); }
    });
    return node;
  }

  /* The drill-down's section, hidden until a mark is clicked. */
  function section(page) {
    host = page;
    var drill = el("section", "drill");
    drill.id = "drill";
    drill.hidden = true;
    var bar = el("div", "drill-head");
    bar.appendChild(el("h2", null)).id = "drill-title";
    bar.appendChild(el("span", "muted")).id = "drill-total";
    bar.appendChild(host.link("drill-csv", "export_tickets"));
    bar.appendChild(host.link("drill-xlsx", "export_tickets"));
    var close = words("button", "close", "secondary");
    close.type = "button"; close.id = "drill-close";
    bar.appendChild(close);
    drill.appendChild(bar);
    var table = el("table", "grid");
    var row = el("tr");
    ["col_number", "col_created", "col_status", "col_priority", "col_channel", "col_category",
      "col_contact", "col_subject"].forEach(function (k) { row.appendChild(words("th", k)); });
    table.appendChild(el("thead")).appendChild(row);
    table.appendChild(el("tbody")).id = "drill-rows";
    drill.appendChild(table);
    var pager = el("div", "pager");
    var prev = words("button", "prev", "secondary");
    prev.type = "button"; prev.id = "drill-prev";
    var next = words("button", "next", "secondary");
    next.type = "button"; next.id = "drill-next";
    pager.appendChild(prev);
    pager.appendChild(el("span", "muted")).id = "drill-page";
    pager.appendChild(next);
    drill.appendChild(pager);

    close.addEventListener("click", function () { drill.hidden = true; state.drill = null; });
    prev.addEventListener("click", function () { if (state.page > 1) showDrill(state.drill, state.page - 1); });
    next.addEventListener("click", function () { showDrill(state.drill, state.page + 1); });
    return drill;
  }

  function drillParams(drill) {
    var params = host.filters();
    Object.keys(drill).forEach(function (k) { if (k !== "label") params.set(k, drill[k]); });
    return params;
  }
  function showDrill(drill, page) {
    if (!drill) return;
    var params = drillParams(drill);
    state.drill = drill; state.page = page;
    host.exportLinks("drill-", params, "tickets");
    params.set("page", String(page));
    params.set("per_page", "50");
    return C.api("GET", "/api/v1/reports/tickets?" + params.toString()).then(function (found) {
      var box = $("drill");
      box.hidden = false;
      box.setAttribute("data-total", String(found.total));
      $("drill-title").textContent = t("drill_title") + drill.label;
      $("drill-total").textContent = t("drill_total").replace("{n}", String(found.total));
      var pages = Math.max(1, Math.ceil(found.total / found.per_page));
      $("drill-page").textContent = page + " / " + pages;
      $("drill-prev").disabled = page <= 1;
      $("drill-next").disabled = page >= pages;
      var body = $("drill-rows");
      C.clear(body);
      found.items.forEach(function (ticket) {
        var row = el("tr");
        row.setAttribute("data-number", ticket.number);
        var cell = el("td");
        var a = el("a", "number", ticket.number);
        a.href = "#ticket=" + encodeURIComponent(ticket.number);
        a.addEventListener("click", function (e) { e.preventDefault(); openTicket(ticket.number); });
        cell.appendChild(a);
        row.appendChild(cell);
        [new Date(ticket.created_at).toLocaleString(document.documentElement.lang),
          t("status." + ticket.status), t("priority." + ticket.priority), t("channel." + ticket.channel),
          host.categoryName(ticket.category_id), ticket.contact_name || "—", ticket.subject || ""
        ].forEach(function (text) { row.appendChild(el("td", null, text)); });
        body.appendChild(row);
      });
      box.scrollIntoView({ block: "nearest" });
    }).catch(C.failed);
  }
  function openTicket(number) {
    if (C.openTicket) { C.show("desk"); history.replaceState(null, "", "#ticket=" + number); C.openTicket(number); return; }
    location.hash = "#ticket=" + number;
    location.reload();  // the console opens the ticket named in the address at start
  }

  /* The list shown again (its words in a new language), if one is shown. */
  function again() { if (state.drill) showDrill(state.drill, state.page); }

  window.GW_REPORT_DRILL = { clickable: clickable, section: section, again: again };
})();
