/* Files an agent attaches to a reply (never to a note or a progress update): chosen with the
 * attach button, listed under the reply box with their size and a remove button, and uploaded
 * one after the other when the reply is sent (POST /api/v1/tickets/{number}/attachments, one
 * "file" part each); composer.js then sends the reply with their refs. A failed upload shows the
 * API's reason and sends nothing; the files already uploaded keep their refs, so a retry sends
 * only the rest. The list belongs to one ticket: opening another one empties it. Every channel
 * carries files (the web chat shows them in the widget).
 *
 * Same rule as console.js: file names go on the page with textContent only.
 */
"use strict";
(function () {
  var C = window.GW_CONSOLE;
  var MAX_FILES = 10;  // what POST .../replies takes at most
  var pending = [];  // { file: File, sent: {ref, filename, content_type} | null }
  var ticket = null;  // the number the list belongs to
  var busy = false;

  function $(id) { return document.getElementById(id); }

  function render() {
    var list = $("attach-list");
    C.clear(list);
    pending.forEach(function (item) {
      var row = C.el("li", "attach-item" + (item.sent ? " attach-sent" : ""));
      row.appendChild(C.el("span", "attach-name", item.file.name));
      row.appendChild(C.el("span", "attach-size", C.kilobytes(item.file.size)));
      var remove = C.el("button", "attach-remove", "×");
      remove.type = "button";
      remove.disabled = busy;
      remove.title = C.t("attach_remove");
      remove.setAttribute("aria-label", C.t("attach_remove") + " " + item.file.name);
      remove.addEventListener("click", function () {
        pending.splice(pending.indexOf(item), 1);
        render();
      });
      row.appendChild(remove);
      list.appendChild(row);
    });
    list.hidden = pending.length === 0;
  }
  function setBusy(on) {
    busy = on;
    $("attach").disabled = on || $("attach-input").disabled;
    $("send-reply").disabled = on;  // one upload at a time: a second click would send twice
    render();
  }

  $("attach").addEventListener("click", function () { $("attach-input").click(); });
  $("attach-input").addEventListener("change", function () {
    var input = $("attach-input");
    var chosen = Array.from(input.files || []);
    input.value = "";  // so that choosing the same file again fires "change" again
    var room = MAX_FILES - pending.length;
    $("composer-error").textContent = chosen.length > room ? C.t("attach_too_many") : "";
    chosen.slice(0, Math.max(room, 0)).forEach(function (file) { pending.push({ file: file, sent: null }); });
    render();
  });

  /* The API's reason for a failed upload (a proxy's 413 may come without a JSON body). */
  function reason(err) {
    if (err && err.error && err.error !== "error") return err.detail;
    if (err && err.status === 413) return C.t("attach_too_large");
    return (err && err.detail) || String(err);
  }

  /* Uploads the files not yet uploaded, in order; resolves with every file's reply entry. */
  function upload(path) {
    var items = pending.slice();
    if (!items.length) return Promise.resolve([]);
    setBusy(true);
    var chain = Promise.resolve();
    items.forEach(function (item) {
      chain = chain.then(function () {
        if (item.sent) return null;
        var form = new FormData();
        form.append("file", item.file, item.file.name);
        return C.api("POST", path, form).then(function (body) {
          item.sent = { ref: body.ref, filename: body.filename, content_type: body.content_type };
        }, function (err) {
          $("composer-error").textContent = C.t("attach_failed") + item.file.name + ": " + reason(err);
          throw err;
        });
      });
    });
    return chain.then(function () {
      setBusy(false);
      return items.map(function (item) { return item.sent; });
    }, function (err) {
      setBusy(false);
      throw err;
    });
  }

  document.addEventListener("gw:ticket", function (event) {
    var shown = event.detail;
    if (shown.number !== ticket) pending = [];
    ticket = shown.number;
    render();
  });
  document.addEventListener("gw:lang", render);

  window.GW_ATTACH = {
    count: function () { return pending.length; },
    upload: upload,
    clear: function () { pending = []; render(); }
  };
})();
