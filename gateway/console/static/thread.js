/* One ticket in the desk: opened by number (and named in the address, #ticket=G...), its head
 * (badges, the claim button, status and priority, a transfer with a note), its thread (messages
 * and events in time order; media.js draws what a message carries) and the customer's profile
 * (profile.js names their channels). The agents and teams directory feeds the transfer form
 * and the names in the queue and the thread. composer.js sends through refreshAfter() and path().
 * A customer's message has a "Reply" action (the event gw:reply-to, which composer.js takes up);
 * an agent's reply to one shows its words quoted above its own.
 *
 * Writes state.current, state.detail, state.agents, state.teams, state.claimedHere (a claim) and
 * state.tickets (a changed row). Same rule as console.js: textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, state = C.state, t = C.t, el = C.el, Queue = window.GW_QUEUE;

  function $(id) { return document.getElementById(id); }

  /* ---------- one ticket ---------- */
  function openTicket(number, quiet) {
    return C.api("GET", "/api/v1/tickets/" + encodeURIComponent(number)).then(function (detail) {
      state.current = number;
      state.detail = detail;
      if (!quiet) C.show("desk");  // a toast clicked on another page (admin, reports) opens the desk
      if (location.hash !== "#ticket=" + number) history.replaceState(null, "", "#ticket=" + number);
      renderTicket(detail);
      Queue.render();
    }).catch(function (err) {
      if (!quiet) C.failed(err);
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
  /* A message's words on one line, cut to about 80 characters, for a quote; without words (a
     photo, a voice note), its first file's name. ``parts``: one message, or an album's. */
  function snippet(parts) {
    var words = window.GW_MEDIA.text(parts).textContent.replace(/\s+/g, " ").trim();
    if (!words) {
      var files = parts.reduce(function (all, m) { return all.concat(m.attachments || []); }, []);
      words = files.length ? String(files[0].filename || "") : "";
    }
    var chars = Array.from(words);  // by code point: an emoji is never cut in half
    return chars.length > 80 ? chars.slice(0, 80).join("") + "…" : words;
  }
  /* The "Reply" action of a customer's message: the composer answers that one (an album: the
     part with the caption, which Telegram's apps quote too). */
  function replyAction(parts) {
    var chosen = parts.find(function (p) { return String(p.text || "").trim(); }) || parts[0];
    var button = el("button", "msg-reply", t("reply_action"));
    button.type = "button";
    button.addEventListener("click", function () {
      document.dispatchEvent(new CustomEvent("gw:reply-to",
        { detail: { id: chosen.id, number: state.current, snippet: snippet(parts) } }));
    });
    return button;
  }
  /* What an agent's reply answers (channel_meta.reply_to_message, a message of this thread),
     quoted above its words; or null. */
  function quoteOf(m, detail) {
    var id = m.channel_meta && m.channel_meta.reply_to_message;
    var quoted = typeof id === "number" && detail.messages.find(function (o) { return o.id === id; });
    if (!quoted) return null;
    var quote = el("blockquote", "msg-quote", snippet([quoted]));
    quote.setAttribute("data-quoted-id", String(id));
    return quote;
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
    if (m.author_type === "customer" && m.kind === "incoming") head.appendChild(replyAction(parts));
    item.appendChild(head);
    if (m.channel_meta && typeof m.channel_meta.subject === "string") {
      item.appendChild(el("div", "msg-subject", m.channel_meta.subject));
    }
    var quote = quoteOf(m, detail);
    if (quote) item.appendChild(quote);
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
    Queue.slaMark($("ticket-sla"), ticket);
    $("ticket-assignee").textContent = Queue.assigneeLabel(ticket);
    $("claim").hidden = ticket.assignee_id !== null;
    $("status-select").value = ticket.status;
    $("priority-select").value = ticket.priority;

    var thread = $("thread");
    var atBottom = thread.scrollTop + thread.clientHeight >= thread.scrollHeight - 20;
    C.clear(thread);
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
    C.clear(list);
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
    }).catch(C.failed);
  }
  function ticketPath(suffix) { return "/api/v1/tickets/" + encodeURIComponent(state.current) + (suffix || ""); }

  $("claim").addEventListener("click", function () {
    state.claimedHere.add(state.current);
    refreshAfter(C.api("POST", ticketPath("/claim")).then(function (body) { C.toast(t("claimed")); return body; }));
  });
  $("status-select").addEventListener("change", function () {
    refreshAfter(C.api("PATCH", ticketPath(), { status: $("status-select").value }));
  });
  $("priority-select").addEventListener("change", function () {
    refreshAfter(C.api("PATCH", ticketPath(), { priority: $("priority-select").value }));
  });
  $("transfer-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { note: $("transfer-note").value };
    if ($("transfer-agent").value) body.assignee_id = Number($("transfer-agent").value);
    if ($("transfer-team").value) body.team_id = Number($("transfer-team").value);
    refreshAfter(C.api("POST", ticketPath("/transfer"), body).then(function (b) {
      $("transfer-note").value = ""; C.toast(t("transferred")); return b;
    }));
  });

  /* ---------- agents and teams (for transfers and names) ---------- */
  function loadDirectory() {
    C.api("GET", "/api/v1/agents").then(function (found) {
      state.agents = found.items;
      var select = $("transfer-agent");
      while (select.options.length > 1) select.remove(1);
      found.items.forEach(function (a) {
        if (a.id === state.me.id) return;
        var option = el("option", null, a.name + (a.online ? " ●" : ""));
        option.value = String(a.id);
        select.appendChild(option);
      });
      Queue.render();
    }).catch(function () { return null; });
    C.api("GET", "/api/v1/teams").then(function (found) {
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

  window.GW_THREAD = { open: openTicket, render: renderTicket, refreshAfter: refreshAfter,
    path: ticketPath, loadDirectory: loadDirectory };
})();
