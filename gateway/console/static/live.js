/* The live queue socket (/api/v1/console/ws, gateway/console/live.py): it tells the server which
 * tickets the list shows, takes the changes pushed for them into the list and the open ticket,
 * announces a ticket newly assigned to this agent (a toast, and a desktop notification when the
 * browser allows one), and reconnects with backoff, reloading the list so nothing is missed.
 *
 * Writes state.ws, state.wsRetry and state.tickets (pushed rows).
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, state = C.state, t = C.t, Queue = window.GW_QUEUE;

  function $(id) { return document.getElementById(id); }

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
      if (event.code === 4401) { window.GW_SESSION.showLogin(); return; }  // the session ended (logged out)
      // Reconnect with backoff; reload the list so nothing missed while away is lost.
      state.wsRetry = Math.min(state.wsRetry + 1, 5);
      setTimeout(function () { if (state.me) Queue.load().then(openSocket); }, 500 * state.wsRetry * state.wsRetry);
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
      if (Queue.matches(ticket)) {
        if (!before) $("queue-total").textContent = String(Number($("queue-total").textContent) + 1);
        state.tickets.set(ticket.number, ticket);
      } else if (before) {
        state.tickets.delete(ticket.number);
      }
      if (state.current === ticket.number && (!state.detail || state.detail.ticket.updated_at !== ticket.updated_at)) {
        C.openTicket(ticket.number, true);
      }
    });
    gone.forEach(function (number) { state.tickets.delete(number); });
    Queue.render();
  }
  function notifyAssignment(ticket) {
    var text = t("new_assignment") + ticket.number + " · " + (ticket.contact_name || "");
    C.toast(text, "assignment", ticket.number);
    if (window.Notification && Notification.permission === "granted") {
      try {
        var note = new Notification(t("brand"), { body: text, tag: "gw-" + ticket.number });
        note.onclick = function () { window.focus(); C.openTicket(ticket.number); };
      } catch (e) { /* the page cannot notify: the toast is enough */ }
    }
  }

  window.GW_LIVE = { open: openSocket, close: closeSocket, watch: watchShown, setLive: setLive };
})();
