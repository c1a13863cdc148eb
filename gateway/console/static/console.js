/* The agent console: one page over the agent API (/api/v1) and the live queue socket.
 *
 * Rule: everything that came from a customer or an agent (names, messages, subjects, file names)
 * is put on the page with textContent or as an attribute value, never parsed as HTML. No code
 * here uses innerHTML, insertAdjacentHTML or document.write.
 */
"use strict";
(function () {
  var STATUSES = ["new", "assigned", "in_progress", "waiting_customer", "resolved", "closed", "reopened"];
  var OPEN = ["new", "assigned", "in_progress", "waiting_customer", "reopened"];
  var PRIORITIES = ["normal", "urgent", "critical"];
  var PRIORITY_RANK = { critical: 0, urgent: 1, normal: 2 };
  var LANG_KEY = "gw-console-lang";
  var CSRF_KEY = "gw-console-csrf";

  var state = {
    lang: "zh-CN", me: null, csrf: sessionStorage.getItem(CSRF_KEY) || "",
    tickets: new Map(), current: null, detail: null, agents: [], teams: [],
    ws: null, wsRetry: 0, claimedHere: new Set(), searchTimer: null, cannedTimer: null
  };

  function $(id) { return document.getElementById(id); }
  function t(key) {
    var words = window.GW_I18N[state.lang] || window.GW_I18N.en;
    return Object.prototype.hasOwnProperty.call(words, key) ? words[key] : key;
  }
  /* An element with plain-text content (never HTML). */
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function kilobytes(bytes) { return Math.ceil(bytes / 1024) + " KB"; }

  /* ---------- language ---------- */
  function pickLanguage() {
    var saved = localStorage.getItem(LANG_KEY);
    if (saved && window.GW_I18N[saved]) return saved;
    var wanted = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
    return /^zh/i.test(wanted) ? "zh-CN" : "en";
  }
  function applyLanguage() {
    document.documentElement.lang = state.lang;
    $("lang").value = state.lang;
    document.querySelectorAll("[data-i18n]").forEach(function (node) {
      node.textContent = t(node.getAttribute("data-i18n"));
    });
    document.querySelectorAll("[data-i18n-placeholder]").forEach(function (node) {
      node.setAttribute("placeholder", t(node.getAttribute("data-i18n-placeholder")));
    });
    fillSelect($("queue-status"), STATUSES, "status.", true);
    fillSelect($("status-select"), STATUSES, "status.", false);
    fillSelect($("priority-select"), PRIORITIES, "priority.", false);
    setLive(state.ws && state.ws.readyState === WebSocket.OPEN);
    renderQueue();
    if (state.detail) renderTicket(state.detail);
    document.dispatchEvent(new Event("gw:lang"));
  }
  function fillSelect(select, values, prefix, keepFirst) {
    var chosen = select.value;
    while (select.options.length > (keepFirst ? 1 : 0)) select.remove(select.options.length - 1);
    values.forEach(function (v) {
      var option = el("option", null, t(prefix + v));
      option.value = v;
      select.appendChild(option);
    });
    select.value = chosen;
  }

  /* ---------- the API ---------- */
  function ApiFailure(status, body) {
    this.status = status; this.error = (body && body.error) || "error";
    this.detail = (body && body.detail) || String(status);
  }
  /* A FormData body goes as multipart/form-data (the browser writes its boundary); others as JSON. */
  function api(method, path, body) {
    var headers = { "Accept": "application/json" };
    var form = body instanceof FormData;
    if (body !== undefined && !form) headers["Content-Type"] = "application/json";
    if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
    return fetch(path, {
      method: method, headers: headers, credentials: "same-origin",
      body: body === undefined || form ? body : JSON.stringify(body)
    }).then(function (response) {
      return response.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (response.status === 401 && path !== "/api/v1/auth/login") { showLogin(); }
        if (!response.ok) throw new ApiFailure(response.status, data);
        return data;
      });
    });
  }
  function failed(err) {
    var text = err && err.status === 409 ? t("taken") : t("error") + ((err && err.detail) || err);
    toast(text, "error");
  }

  /* ---------- views ---------- */
  function show(view) {
    document.body.setAttribute("data-view", view);
    $("login-view").hidden = view !== "login";
    $("password-view").hidden = view !== "password";
    $("desk-view").hidden = view !== "desk";
    $("logout").hidden = view === "login";
    $("online-wrap").hidden = view !== "desk";
  }
  function showLogin() {
    closeSocket();
    state.me = null; state.csrf = ""; sessionStorage.removeItem(CSRF_KEY);
    $("me-name").textContent = "";
    show("login");
  }
  function enter(agent) {
    state.me = agent;
    $("me-name").textContent = agent.name;
    $("online").checked = !!agent.online;
    if (agent.must_change_password) { show("password"); return; }
    show("desk");
    loadDirectory();
    loadQueue().then(openSocket);
    var wanted = location.hash.match(/^#ticket=([A-Za-z0-9-]+)$/);
    if (wanted) openTicket(wanted[1]);
    document.dispatchEvent(new CustomEvent("gw:enter", { detail: agent }));
  }

  $("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    $("login-error").textContent = "";
    api("POST", "/api/v1/auth/login", {
      email: $("login-email").value, password: $("login-password").value
    }).then(function (body) {
      state.csrf = body.csrf_token;
      sessionStorage.setItem(CSRF_KEY, body.csrf_token);
      $("login-password").value = "";
      // Asked from the login click (a user gesture), as browsers require.
      if (window.Notification && Notification.permission === "default") {
        try { Notification.requestPermission(); } catch (e) { /* not offered */ }
      }
      enter(body.agent);
    }).catch(function (err) {
      $("login-error").textContent = err.status === 429 ? t("too_many") : t("bad_credentials");
    });
  });

  $("password-form").addEventListener("submit", function (event) {
    event.preventDefault();
    $("pw-error").textContent = "";
    if ($("pw-new").value !== $("pw-confirm").value) {
      $("pw-error").textContent = t("password_mismatch"); return;
    }
    api("POST", "/api/v1/auth/password", {
      current_password: $("pw-current").value, new_password: $("pw-new").value
    }).then(function () {
      ["pw-current", "pw-new", "pw-confirm"].forEach(function (id) { $(id).value = ""; });
      toast(t("password_changed"));
      return api("GET", "/api/v1/auth/me").then(enter);
    }).catch(function (err) { $("pw-error").textContent = t("error") + err.detail; });
  });

  $("logout").addEventListener("click", function () {
    api("POST", "/api/v1/auth/logout").catch(function () { return null; }).then(showLogin);
  });
  $("online").addEventListener("change", function () {
    api("POST", "/api/v1/auth/presence", { online: $("online").checked }).catch(failed);
  });
  $("lang").addEventListener("change", function () {
    state.lang = $("lang").value;
    localStorage.setItem(LANG_KEY, state.lang);
    applyLanguage();
  });

  /* ---------- the queue ---------- */
  function queueQuery() {
    var params = new URLSearchParams({ per_page: "100" });
    if ($("queue-scope").value) params.set("assignee", $("queue-scope").value);
    if ($("queue-status").value) params.set("status", $("queue-status").value);
    if ($("queue-search").value.trim()) params.set("q", $("queue-search").value.trim());
    return params;
  }
  function loadQueue() {
    return api("GET", "/api/v1/tickets?" + queueQuery().toString()).then(function (page) {
      state.tickets = new Map();
      page.items.forEach(function (ticket) { state.tickets.set(ticket.number, ticket); });
      $("queue-total").textContent = String(page.total);
      renderQueue();
      watchShown();
    }).catch(function (err) { if (err.status !== 401) failed(err); });
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
    clear(list);
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
      row.addEventListener("click", function () { openTicket(ticket.number); });
      row.addEventListener("keydown", function (e) { if (e.key === "Enter") openTicket(ticket.number); });
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

  /* ---------- live updates ---------- */
  function setLive(on) {
    document.body.setAttribute("data-ws", on ? "open" : "closed");
    $("ws-state").textContent = on ? t("live_on") : t("live_off");
    $("ws-state").classList.toggle("on", !!on);
  }
  function openSocket() {
    if (!state.me || state.ws) return;
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/api/v1/console/ws");
    state.ws = ws;
    ws.onopen = function () { state.wsRetry = 0; setLive(true); watchShown(); };
    ws.onmessage = function (event) {
      var frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "tickets") onTickets(frame.items || [], frame.gone || []);
    };
    ws.onclose = function (event) {
      setLive(false);
      if (state.ws !== ws) return;
      state.ws = null;
      if (!state.me) return;
      if (event.code === 4401) { showLogin(); return; }  // the session ended (logged out)
      // Reconnect with backoff; reload the list so nothing missed while away is lost.
      state.wsRetry = Math.min(state.wsRetry + 1, 5);
      setTimeout(function () { if (state.me) loadQueue().then(openSocket); }, 500 * state.wsRetry * state.wsRetry);
    };
  }
  function closeSocket() {
    var ws = state.ws;
    state.ws = null;
    if (ws) ws.close();
    setLive(false);
  }
  function watchShown() {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify({ type: "watch", numbers: Array.from(state.tickets.keys()) }));
    }
  }
  function onTickets(items, gone) {
    items.forEach(function (ticket) {
      var before = state.tickets.get(ticket.number);
      var mineNow = ticket.assignee_id === state.me.id;
      var wasMine = before ? before.assignee_id === state.me.id : false;
      if (mineNow && !wasMine && !state.claimedHere.has(ticket.number)) notifyAssignment(ticket);
      if (matchesFilters(ticket)) {
        if (!before) $("queue-total").textContent = String(Number($("queue-total").textContent) + 1);
        state.tickets.set(ticket.number, ticket);
      } else if (before) {
        state.tickets.delete(ticket.number);
      }
      if (state.current === ticket.number && (!state.detail || state.detail.ticket.updated_at !== ticket.updated_at)) {
        openTicket(ticket.number, true);
      }
    });
    gone.forEach(function (number) { state.tickets.delete(number); });
    renderQueue();
  }
  function notifyAssignment(ticket) {
    var text = t("new_assignment") + ticket.number + " · " + (ticket.contact_name || "");
    toast(text, "assignment", ticket.number);
    if (window.Notification && Notification.permission === "granted") {
      try {
        var note = new Notification(t("brand"), { body: text, tag: "gw-" + ticket.number });
        note.onclick = function () { window.focus(); openTicket(ticket.number); };
      } catch (e) { /* the page cannot notify: the toast is enough */ }
    }
  }

  /* ---------- toasts ---------- */
  function toast(text, kind, number) {
    var node = el("div", "toast" + (kind ? " toast-" + kind : ""), text);
    node.setAttribute("role", "status");
    if (number) {
      node.setAttribute("data-number", number);
      node.addEventListener("click", function () { openTicket(number); });
    }
    $("toasts").appendChild(node);
    setTimeout(function () { node.remove(); }, 8000);
  }

  /* ---------- one ticket ---------- */
  function openTicket(number, quiet) {
    return api("GET", "/api/v1/tickets/" + encodeURIComponent(number)).then(function (detail) {
      state.current = number;
      state.detail = detail;
      if (!quiet) show("desk");  // a toast clicked on another page (admin, reports) opens the desk
      if (location.hash !== "#ticket=" + number) history.replaceState(null, "", "#ticket=" + number);
      renderTicket(detail);
      renderQueue();
    }).catch(function (err) {
      if (!quiet) failed(err);
      if (err.status === 404 && state.current === number) {
        state.current = null; state.detail = null;
        $("ticket-view").hidden = true; $("profile").hidden = true; $("ticket-empty").hidden = false;
      }
    });
  }
  function authorClass(m) {
    if (m.kind === "note") return "msg-note";
    if (m.author_type === "customer") return "msg-customer";
    if (m.author_type === "bot") return "msg-bot";
    if (m.author_type === "agent") return "msg-agent";
    return "msg-system";
  }
  function stamp(iso) {
    var d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleString(state.lang);
  }
  /* One message of the thread; ``parts`` is one message, or an album's (media.js). */
  function messageItem(parts, detail) {
    var m = parts[0];
    var item = el("li", "msg " + authorClass(m) + (parts.length > 1 ? " msg-album" : ""));
    item.setAttribute("data-message-id", String(m.id));
    item.setAttribute("data-author", m.author_type);
    item.setAttribute("data-kind", m.kind);
    var head = el("div", "msg-head");
    var who = t("author." + m.author_type);
    if (m.author_type === "customer" && detail.contact.name) who = detail.contact.name;
    if (m.author_type === "agent" && m.channel_meta && m.channel_meta.agent_name) who = m.channel_meta.agent_name;
    head.appendChild(el("span", "msg-author", who));
    if (m.kind === "note") head.appendChild(el("span", "msg-tag", t("note_label")));
    if (m.channel_meta && m.channel_meta.progress) head.appendChild(el("span", "msg-tag", t("progress_label")));
    var edits = [];
    parts.forEach(function (p) {
      if (p.channel_meta && Array.isArray(p.channel_meta.edits)) edits = edits.concat(p.channel_meta.edits);
    });
    if (edits.length) {
      /* The customer changed the message (a Telegram edit): say so, and what it said before. */
      var edited = head.appendChild(el("span", "msg-tag msg-edited", t("edited_label")));
      edited.title = t("edited_before") + edits.map(function (e) { return String(e.text || ""); }).join(" → ");
    }
    head.appendChild(el("span", "chan", t("channel." + m.channel)));
    head.appendChild(el("time", "msg-time", stamp(m.created_at)));
    item.appendChild(head);
    if (m.channel_meta && typeof m.channel_meta.subject === "string") {
      item.appendChild(el("div", "msg-subject", m.channel_meta.subject));
    }
    item.appendChild(window.GW_MEDIA.text(parts));  // media.js: words, files, a map link
    var map = window.GW_MEDIA.mapLink(m, t);
    if (map) item.appendChild(map);
    if (m.delivery && m.delivery.status === "failed") {
      /* An agent's words that never reached the customer, and why: they failed in the outbox,
         seen by admins only, while the agent took the customer as answered. (Pending is not
         shown: nothing tells the console when a delivery succeeds, only when one fails.) */
      var note = el("div", "msg-delivery msg-undelivered",
        t("undelivered") + (m.delivery.error ? ": " + m.delivery.error : ""));
      note.setAttribute("role", "alert");
      item.appendChild(note);
    }
    var files = window.GW_MEDIA.attachments(parts, detail.ticket.number, t);
    if (files) item.appendChild(files);
    return item;
  }
  /* An event's value in words: statuses and priorities translated, agent ids as names. */
  function eventValue(kind, value) {
    if (value === null || value === undefined || value === "") return "—";
    if (kind === "status" || kind === "reopened") return t("status." + value);
    if (kind === "priority") return t("priority." + value);
    if (kind === "assignment") {
      var agent = state.agents.find(function (a) { return String(a.id) === String(value); });
      return agent ? agent.name : "#" + value;
    }
    return value;
  }
  function eventItem(e) {
    var text = t("event." + e.kind) + ": " +
      (e.old_value ? eventValue(e.kind, e.old_value) + " → " : "") + eventValue(e.kind, e.new_value);
    if (e.note) text += " — " + e.note;
    var item = el("li", "event", text);
    item.setAttribute("data-kind", e.kind);
    item.appendChild(el("time", "msg-time", stamp(e.created_at)));
    return item;
  }
  function renderTicket(detail) {
    var ticket = detail.ticket;
    $("ticket-empty").hidden = true;
    $("ticket-view").hidden = false;
    $("ticket-view").setAttribute("data-number", ticket.number);
    $("ticket-number").textContent = ticket.number;
    $("ticket-subject").textContent = ticket.subject || "";
    var prio = $("ticket-priority");
    prio.className = "prio prio-" + ticket.priority;
    prio.textContent = t("priority." + ticket.priority);
    $("ticket-status").textContent = t("status." + ticket.status);
    $("ticket-channel").textContent = t("channel." + ticket.channel);
    slaMark($("ticket-sla"), ticket);
    $("ticket-assignee").textContent = assigneeLabel(ticket);
    $("claim").hidden = ticket.assignee_id !== null;
    $("status-select").value = ticket.status;
    $("priority-select").value = ticket.priority;

    var thread = $("thread");
    var atBottom = thread.scrollTop + thread.clientHeight >= thread.scrollHeight - 20;
    clear(thread);
    var entries = window.GW_MEDIA.albums(detail.messages).map(function (parts) {
      return { at: parts[0].created_at, node: messageItem(parts, detail) };
    })
      .concat(detail.events.map(function (e) { return { at: e.created_at, node: eventItem(e) }; }));
    entries.sort(function (a, b) { return Date.parse(a.at) - Date.parse(b.at); });
    entries.forEach(function (entry) { thread.appendChild(entry.node); });
    if (atBottom || thread.getAttribute("data-number") !== ticket.number) thread.scrollTop = thread.scrollHeight;
    thread.setAttribute("data-number", ticket.number);
    renderProfile(detail);
    document.dispatchEvent(new CustomEvent("gw:ticket", { detail: ticket }));
  }
  function renderProfile(detail) {
    var c = detail.contact;
    $("profile").hidden = false;
    $("profile-name").textContent = c.name || "—";
    $("profile-email").textContent = c.email || "—";
    $("profile-phone").textContent = c.phone || "—";
    window.GW_PROFILE.channels($("profile-channels"), detail, t);  // profile.js: names, reach
    $("profile-vip").textContent = c.vip ? t("yes") : t("no");
    var list = $("profile-tickets");
    clear(list);
    if (!detail.other_tickets.length) list.appendChild(el("li", "muted", t("none")));
    detail.other_tickets.forEach(function (other) {
      var item = el("li", "other-ticket");
      var link = el("a", null, other.number);
      link.href = "#ticket=" + encodeURIComponent(other.number);
      link.addEventListener("click", function (e) { e.preventDefault(); openTicket(other.number); });
      item.appendChild(link);
      item.appendChild(el("span", "chan", t("channel." + other.channel)));
      item.appendChild(el("span", "status", t("status." + other.status)));
      if (other.subject) item.appendChild(el("span", "subject", other.subject));
      list.appendChild(item);
    });
  }
  function refreshAfter(promise) {
    return promise.then(function (body) {
      var ticket = body && body.ticket ? body.ticket : body;
      if (ticket && ticket.number) state.tickets.set(ticket.number, ticket);
      return openTicket(state.current);
    }).catch(failed);
  }
  function ticketPath(suffix) { return "/api/v1/tickets/" + encodeURIComponent(state.current) + (suffix || ""); }

  $("claim").addEventListener("click", function () {
    state.claimedHere.add(state.current);
    refreshAfter(api("POST", ticketPath("/claim")).then(function (body) { toast(t("claimed")); return body; }));
  });
  $("status-select").addEventListener("change", function () {
    refreshAfter(api("PATCH", ticketPath(), { status: $("status-select").value }));
  });
  $("priority-select").addEventListener("change", function () {
    refreshAfter(api("PATCH", ticketPath(), { priority: $("priority-select").value }));
  });
  $("transfer-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { note: $("transfer-note").value };
    if ($("transfer-agent").value) body.assignee_id = Number($("transfer-agent").value);
    if ($("transfer-team").value) body.team_id = Number($("transfer-team").value);
    refreshAfter(api("POST", ticketPath("/transfer"), body).then(function (b) {
      $("transfer-note").value = ""; toast(t("transferred")); return b;
    }));
  });
  function send(kind) {
    var text = $("composer").value;
    var files = kind === "replies" ? window.GW_ATTACH : null;  // attach.js: replies only
    if (!state.current || (!text.trim() && !(files && files.count()))) return;
    $("composer-error").textContent = "";
    if (kind === "replies") state.claimedHere.add(state.current);
    var path = ticketPath("/" + kind);
    // The files first (their refs go in the reply); if one fails, attach.js says why and
    // nothing is sent: the text and the files stay for another try.
    (files ? files.upload(ticketPath("/attachments")) : Promise.resolve([])).then(function (refs) {
      var body = refs.length ? { text: text, attachments: refs } : { text: text };
      refreshAfter(api("POST", path, body).then(function (created) {
        $("composer").value = ""; $("canned-list").hidden = true; if (files) files.clear();
        toast(t("sent")); return created;
      }));
    }, function () { return null; });
  }
  $("send-reply").addEventListener("click", function () { send("replies"); });
  $("send-note").addEventListener("click", function () { send("notes"); });
  $("send-progress").addEventListener("click", function () { send("progress"); });

  /* ---------- canned responses: "/shortcut" in the reply box ---------- */
  $("composer").addEventListener("input", function () {
    var value = $("composer").value;
    clearTimeout(state.cannedTimer);
    if (!/^\/[^\s]*$/.test(value)) { $("canned-list").hidden = true; return; }
    state.cannedTimer = setTimeout(function () {
      api("GET", "/api/v1/canned?q=" + encodeURIComponent(value)).then(function (found) {
        var list = $("canned-list");
        clear(list);
        found.items.forEach(function (c) {
          var item = el("li", "canned-item");
          item.tabIndex = 0;
          item.setAttribute("data-shortcut", c.shortcut);
          item.appendChild(el("strong", null, "/" + c.shortcut));
          item.appendChild(el("span", null, " " + c.title));
          item.addEventListener("click", function () {
            $("composer").value = c.text; list.hidden = true; $("composer").focus();
          });
          list.appendChild(item);
        });
        list.hidden = found.items.length === 0;
      }).catch(function () { $("canned-list").hidden = true; });
    }, 150);
  });

  /* ---------- agents and teams (for transfers and names) ---------- */
  function loadDirectory() {
    api("GET", "/api/v1/agents").then(function (found) {
      state.agents = found.items;
      var select = $("transfer-agent");
      while (select.options.length > 1) select.remove(1);
      found.items.forEach(function (a) {
        if (a.id === state.me.id) return;
        var option = el("option", null, a.name + (a.online ? " ●" : ""));
        option.value = String(a.id);
        select.appendChild(option);
      });
      renderQueue();
    }).catch(function () { return null; });
    api("GET", "/api/v1/teams").then(function (found) {
      state.teams = found.items;
      var select = $("transfer-team");
      while (select.options.length > 1) select.remove(1);
      found.items.forEach(function (team) {
        var option = el("option", null, team.name);
        option.value = String(team.id);
        select.appendChild(option);
      });
    }).catch(function () { return null; });
  }

  /* The hook other pages use (admin.js, kb.js, reports.js): each builds its own view and a nav
   * button with data-go="name"; show(name) switches to it (their CSS hides the others). */
  window.GW_CONSOLE = { api: api, t: t, el: el, clear: clear, toast: toast, failed: failed, show: show,
    openTicket: openTicket, kilobytes: kilobytes, me: function () { return state.me; } };
  $("page-nav").addEventListener("click", function (e) { if (e.target.dataset.go) show(e.target.dataset.go); });

  /* ---------- start ---------- */
  state.lang = pickLanguage();
  applyLanguage();
  if (!state.csrf) {
    showLogin();
  } else {
    api("GET", "/api/v1/auth/me").then(enter).catch(function () { showLogin(); });
  }
})();
