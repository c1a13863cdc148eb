/* The reply box under the open ticket: a reply to the customer (with the files attach.js holds),
 * an internal note or a progress update, and canned responses found by typing "/shortcut".
 * thread.js shows the ticket again after each send. A reply answers the customer's message the
 * agent chose with its "Reply" action (thread.js's gw:reply-to), shown above the box until it
 * is sent or cancelled (x), or another ticket opens.
 *
 * Writes state.claimedHere (a reply claims the ticket here) and state.cannedTimer. Same rule as
 * console.js: canned texts and the quoted words go on the page with textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE, state = C.state, t = C.t, el = C.el, Thread = window.GW_THREAD;

  function $(id) { return document.getElementById(id); }

  /* ---------- the message a reply answers ---------- */
  var replyTo = null;  // { id, number, snippet }: the customer's message, on ticket ``number``
  function answer(chosen) {
    replyTo = chosen;
    $("reply-to-text").textContent = chosen ? chosen.snippet : "";
    $("reply-to").hidden = !chosen;
  }
  function labelCancel() {
    $("reply-to-cancel").title = t("reply_cancel");
    $("reply-to-cancel").setAttribute("aria-label", t("reply_cancel"));
  }
  document.addEventListener("gw:reply-to", function (event) {
    answer(event.detail);
    $("composer").focus();
  });
  document.addEventListener("gw:ticket", function (event) {
    if (replyTo && event.detail.number !== replyTo.number) answer(null);
  });
  document.addEventListener("gw:lang", labelCancel);
  $("reply-to-cancel").addEventListener("click", function () { answer(null); });
  labelCancel();

  /* ---------- replies, notes, progress updates ---------- */
  function send(kind) {
    var text = $("composer").value;
    var files = kind === "replies" ? window.GW_ATTACH : null;  // attach.js: replies only
    if (!state.current || (!text.trim() && !(files && files.count()))) return;
    $("composer-error").textContent = "";
    if (kind === "replies") state.claimedHere.add(state.current);
    var path = Thread.path("/" + kind);
    // The files first (their refs go in the reply); if one fails, attach.js says why and
    // nothing is sent: the text and the files stay for another try.
    var answered = kind === "replies" && replyTo && replyTo.number === state.current ? replyTo : null;
    (files ? files.upload(Thread.path("/attachments")) : Promise.resolve([])).then(function (refs) {
      var body = refs.length ? { text: text, attachments: refs } : { text: text };
      if (answered) body.reply_to = answered.id;
      Thread.refreshAfter(C.api("POST", path, body).then(function (created) {
        $("composer").value = ""; $("canned-list").hidden = true; if (files) files.clear();
        if (answered && replyTo === answered) answer(null);
        C.toast(t("sent")); return created;
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
      C.api("GET", "/api/v1/canned?q=" + encodeURIComponent(value)).then(function (found) {
        var list = $("canned-list");
        C.clear(list);
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
})();
