/* The desk's ticket list: loaded with its filters (scope, status, search), sorted open first,
 * then by priority and first-response due time, and each row's countdown to that due time
 * (ticking every second). live.js keeps it current between loads; thread.js uses slaMark() and
 * assigneeLabel() for the open ticket's head.
 *
 * Writes state.tickets and state.searchTimer. Same rule as console.js: customers' names and
 * subjects go on the page with textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, state = C.state, t = C.t, el = C.el;
  var OPEN = ["new", "assigned", "in_progress", "waiting_customer", "reopened"];
  var PRIORITY_RANK = { critical: 0, urgent: 1, normal: 2 };

  function $(id) { return document.getElementById(id); }

  function queueQuery() {
    var params = new URLSearchParams({ per_page: "100" });
    if ($("queue-scope").value) params.set("assignee", $("queue-scope").value);
    if ($("queue-status").value) params.set("status", $("queue-status").value);
    if ($("queue-search").value.trim()) params.set("q", $("queue-search").value.trim());
    return params;
  }
  function loadQueue() {
    return C.api("GET", "/api/v1/tickets?" + queueQuery().toString()).then(function (page) {
      state.tickets = new Map();
      page.items.forEach(function (ticket) { state.tickets.set(ticket.number, ticket); });
      $("queue-total").textContent = String(page.total);
      renderQueue();
      window.GW_LIVE.watch();
    }).catch(function (err) { if (err.status !== 401) C.failed(err); });
  }
  ["queue-scope", "queue-status"].forEach(function (id) { $(id).addEventListener("change", loadQueue); });
  $("queue-search").addEventListener("input", function () {
    clearTimeout(state.searchTimer);
    state.searchTimer = setTimeout(loadQueue, 300);
  });
  /* Whether a pushed ticket belongs in the list as filtered (search is left to the server). */
  function matchesFilters(ticket) {
    var scope = $("queue-scope").value, status = $("queue-status").value;
    if (scope === "me" && ticket.assignee_id !== state.me.id) return false;
    if (scope === "none" && ticket.assignee_id !== null) return false;
    if (status && ticket.status !== status) return false;
    return !$("queue-search").value.trim();
  }
  function sortedTickets() {
    return Array.from(state.tickets.values()).sort(function (a, b) {
      var open = (OPEN.indexOf(a.status) < 0) - (OPEN.indexOf(b.status) < 0);
      if (open) return open;
      var rank = PRIORITY_RANK[a.priority] - PRIORITY_RANK[b.priority];
      if (rank) return rank;
      var due = (a.first_response_due_at || "9") < (b.first_response_due_at || "9") ? -1 : 1;
      return a.first_response_due_at === b.first_response_due_at ? (a.updated_at < b.updated_at ? 1 : -1) : due;
    });
  }
  function renderQueue() {
    var list = $("queue-list");
    if (!state.me) return;
    C.clear(list);
    sortedTickets().forEach(function (ticket) {
      var row = el("li", "ticket-row prio-" + ticket.priority);
      row.setAttribute("data-number", ticket.number);
      row.setAttribute("data-priority", ticket.priority);
      row.setAttribute("data-status", ticket.status);
      row.tabIndex = 0;
      if (state.current === ticket.number) row.classList.add("selected");
      var top = el("div", "row-top");
      top.appendChild(el("span", "prio prio-" + ticket.priority, t("priority." + ticket.priority)));
      top.appendChild(el("span", "number", ticket.number));
      top.appendChild(el("span", "chan", t("channel." + ticket.channel)));
      row.appendChild(top);
      row.appendChild(el("div", "contact", ticket.contact_name || "—"));
      if (ticket.subject) row.appendChild(el("div", "subject", ticket.subject));
      var bottom = el("div", "row-bottom");
      bottom.appendChild(el("span", "status", t("status." + ticket.status)));
      var sla = el("span", "sla");
      slaMark(sla, ticket);
      bottom.appendChild(sla);
      bottom.appendChild(el("span", "assignee", assigneeLabel(ticket)));
      row.appendChild(bottom);
      row.addEventListener("click", function () { C.openTicket(ticket.number); });
      row.addEventListener("keydown", function (e) { if (e.key === "Enter") C.openTicket(ticket.number); });
      list.appendChild(row);
    });
  }
  function assigneeLabel(ticket) {
    if (ticket.assignee_id === null) return t("unassigned");
    if (state.me && ticket.assignee_id === state.me.id) return t("assigned_to") + t("me");
    var agent = state.agents.find(function (a) { return a.id === ticket.assignee_id; });
    return t("assigned_to") + (agent ? agent.name : "#" + ticket.assignee_id);
  }

  /* ---------- SLA countdown (first response due) ---------- */
  function slaMark(node, ticket) {
    node.removeAttribute("data-due");
    node.classList.remove("sla-overdue", "sla-soon", "sla-done");
    if (ticket.first_response_at) { node.textContent = t("responded"); node.classList.add("sla-done"); return; }
    if (!ticket.first_response_due_at || OPEN.indexOf(ticket.status) < 0) { node.textContent = ""; return; }
    node.setAttribute("data-due", ticket.first_response_due_at);
    tickOne(node);
  }
  function clock(ms) {
    var s = Math.floor(Math.abs(ms) / 1000), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s % 60);
  }
  function tickOne(node) {
    var left = Date.parse(node.getAttribute("data-due")) - Date.now();
    node.textContent = (left < 0 ? t("overdue") : t("due_in")) + clock(left);
    node.classList.toggle("sla-overdue", left < 0);
    node.classList.toggle("sla-soon", left >= 0 && left < 5 * 60 * 1000);
  }
  setInterval(function () { document.querySelectorAll(".sla[data-due]").forEach(tickOne); }, 1000);

  window.GW_QUEUE = { load: loadQueue, render: renderQueue, matches: matchesFilters,
    slaMark: slaMark, assigneeLabel: assigneeLabel };
})();
