/* The agent console's base: one page over the agent API (/api/v1) and the live queue socket.
 * This file holds what every part of the page shares: the desk's state, the API client, toasts,
 * switching views, and window.GW_CONSOLE, the hook the other files use. The desk itself is
 * queue.js (the ticket list and its SLA countdown), live.js (the live queue socket), thread.js
 * (one ticket: its head, thread and profile), composer.js (the reply box) and session.js (login,
 * language, and the page's start); index.html loads them in that order, after this file.
 *
 * Rule: everything that came from a customer or an agent (names, messages, subjects, file names)
 * is put on the page with textContent or as an attribute value, never parsed as HTML. No code
 * in the console uses innerHTML, insertAdjacentHTML or document.write.
 */
"use strict";
(function () {
  /* One object for the desk's files to share (each says which fields it writes). */
  var state = {
    lang: "zh-CN", me: null, csrf: "",
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
  /* An element showing the word for ``key``, relabelled when the language changes (data-i18n). */
  function words(tag, key, cls) {
    var node = el(tag, cls, t(key));
    node.setAttribute("data-i18n", key);
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function kilobytes(bytes) { return Math.ceil(bytes / 1024) + " KB"; }

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
        if (response.status === 401 && path !== "/api/v1/auth/login") { window.GW_SESSION.showLogin(); }
        if (!response.ok) throw new ApiFailure(response.status, data);
        return data;
      });
    });
  }
  function failed(err) {
    var text = err && err.status === 409 ? t("taken") : t("error") + ((err && err.detail) || err);
    toast(text, "error");
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

  /* ---------- views ---------- */
  function show(view) {
    document.body.setAttribute("data-view", view);
    $("login-view").hidden = view !== "login";
    $("password-view").hidden = view !== "password";
    $("desk-view").hidden = view !== "desk";
    $("logout").hidden = view === "login";
    $("online-wrap").hidden = view !== "desk";
  }
  /* thread.js opens tickets; this name is here for the files loaded before it and after. */
  function openTicket(number, quiet) { return window.GW_THREAD.open(number, quiet); }

  /* The hook other pages use (admin.js, kb.js, reports.js): each builds its own view and a nav
   * button with data-go="name"; show(name) switches to it (their CSS hides the others).
   * ``state`` is the desk's, for the desk's own files. */
  window.GW_CONSOLE = { api: api, t: t, el: el, words: words, clear: clear, toast: toast,
    failed: failed, show: show, openTicket: openTicket, kilobytes: kilobytes,
    me: function () { return state.me; }, state: state };
  $("page-nav").addEventListener("click", function (e) { if (e.target.dataset.go) show(e.target.dataset.go); });
})();
