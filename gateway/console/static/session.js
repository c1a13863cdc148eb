/* Who is at the console, and in which language: the login form, the first-login password change,
 * logout, the "online for dispatch" switch and the language picker. enter() opens the desk for a
 * logged-in agent and tells the other pages (the gw:enter event); a language change relabels the
 * page and tells them too (gw:lang). The last of the desk's files: its end starts the page.
 *
 * Writes state.me, state.csrf and state.lang.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, state = C.state, t = C.t, el = C.el;
  var Queue = window.GW_QUEUE, Live = window.GW_LIVE, Thread = window.GW_THREAD;
  var STATUSES = ["new", "assigned", "in_progress", "waiting_customer", "resolved", "closed", "reopened"];
  var PRIORITIES = ["normal", "urgent", "critical"];
  var LANG_KEY = "gw-console-lang";
  var CSRF_KEY = "gw-console-csrf";

  function $(id) { return document.getElementById(id); }

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
    Live.setLive(state.ws && state.ws.readyState === WebSocket.OPEN);
    Queue.render();
    if (state.detail) Thread.render(state.detail);
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

  /* ---------- logged in or not ---------- */
  function showLogin() {
    Live.close();
    state.me = null; state.csrf = ""; sessionStorage.removeItem(CSRF_KEY);
    $("me-name").textContent = "";
    C.show("login");
  }
  function enter(agent) {
    state.me = agent;
    $("me-name").textContent = agent.name;
    $("online").checked = !!agent.online;
    if (agent.must_change_password) { C.show("password"); return; }
    C.show("desk");
    Thread.loadDirectory();
    Queue.load().then(Live.open);
    var wanted = location.hash.match(/^#ticket=([A-Za-z0-9-]+)$/);
    if (wanted) Thread.open(wanted[1]);
    document.dispatchEvent(new CustomEvent("gw:enter", { detail: agent }));
  }

  $("login-form").addEventListener("submit", function (event) {
    event.preventDefault();
    $("login-error").textContent = "";
    C.api("POST", "/api/v1/auth/login", {
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
    C.api("POST", "/api/v1/auth/password", {
      current_password: $("pw-current").value, new_password: $("pw-new").value
    }).then(function () {
      ["pw-current", "pw-new", "pw-confirm"].forEach(function (id) { $(id).value = ""; });
      C.toast(t("password_changed"));
      return C.api("GET", "/api/v1/auth/me").then(enter);
    }).catch(function (err) { $("pw-error").textContent = t("error") + err.detail; });
  });

  $("logout").addEventListener("click", function () {
    C.api("POST", "/api/v1/auth/logout").catch(function () { return null; }).then(showLogin);
  });
  $("online").addEventListener("change", function () {
    C.api("POST", "/api/v1/auth/presence", { online: $("online").checked }).catch(C.failed);
  });
  $("lang").addEventListener("change", function () {
    state.lang = $("lang").value;
    localStorage.setItem(LANG_KEY, state.lang);
    applyLanguage();
  });

  window.GW_SESSION = { showLogin: showLogin };

  /* ---------- start ---------- */
  state.csrf = sessionStorage.getItem(CSRF_KEY) || "";
  state.lang = pickLanguage();
  applyLanguage();
  if (!state.csrf) {
    showLogin();
  } else {
    C.api("GET", "/api/v1/auth/me").then(enter).catch(function () { showLogin(); });
  }
})();
