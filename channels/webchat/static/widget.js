/*
 * Support gateway web chat widget. Plain JavaScript, no build step:
 *   <script src="https://HOST/widget.js" data-locale="zh-CN" defer></script>
 * adds a chat button and panel to the page. Protocol: channels/webchat/frames.py.
 * Customer and agent text is only ever set with textContent, never parsed as HTML.
 * Files (the paperclip) are uploaded first (POST /api/v1/webchat/attachments), then named in a
 * message; the gateway's files are fetched with the session token in a header, never in a URL.
 */
(function () {
  "use strict";
  if (window.__gwWebchat) return;
  window.__gwWebchat = true;

  var script = document.currentScript || document.querySelector('script[src*="widget.js"]');
  var base = new URL(script && script.src ? script.src : location.href, location.href);
  var origin = base.origin;
  var locale = (script && script.getAttribute("data-locale")) || navigator.language || "en";
  locale = /^zh/i.test(locale) ? "zh-CN" : "en";

  var TEXTS = {
    "zh-CN": {
      open: "在线客服", title: "在线客服", close: "关闭", send: "发送", human: "转人工",
      humanText: "我想联系人工客服", placeholder: "请输入您的问题…", input: "消息",
      helpful: "这个回答有帮助吗？", yes: "有帮助", no: "没帮助", thanks: "感谢您的反馈",
      typing: "客服正在输入…", connecting: "正在连接…", online: "已连接",
      offline: "连接已断开，正在重试…", you: "我", bot: "智能助手", agent: "客服",
      rateTitle: "请为本次服务评分", star: "星", comment: "留言（可选）", submit: "提交评价",
      rated: "感谢您的评价！", tooLarge: "消息太长了，请缩短后再发送。",
      rateLimited: "发送太快了，请稍候再试。", failed: "发送失败，将自动重试。", log: "聊天记录",
      attach: "发送文件", fileTooLarge: "文件太大，无法发送。", uploadFailed: "文件上传失败：",
      files: "附件"
    },
    en: {
      open: "Chat with us", title: "Customer service", close: "Close", send: "Send",
      human: "Talk to a person", humanText: "I would like to talk to a person",
      placeholder: "Type your question…", input: "Message", helpful: "Did this help?",
      yes: "Yes", no: "No", thanks: "Thanks for the feedback", typing: "An agent is typing…",
      connecting: "Connecting…", online: "Connected", offline: "Disconnected, retrying…",
      you: "You", bot: "Assistant", agent: "Agent", rateTitle: "Please rate our service",
      star: "star", comment: "Comment (optional)", submit: "Send rating",
      rated: "Thank you for your rating!", tooLarge: "That message is too long; please shorten it.",
      rateLimited: "You are sending too fast; please wait a moment.",
      failed: "Not sent yet; retrying automatically.", log: "Conversation",
      attach: "Send a file", fileTooLarge: "That file is too large to send.",
      uploadFailed: "The file could not be uploaded: ", files: "Files"
    }
  };
  var T = TEXTS[locale];
  var KEY = "gw-webchat:" + origin;
  var store = {
    get: function (name, fallback) {
      try { var v = localStorage.getItem(KEY + ":" + name); return v === null ? fallback : JSON.parse(v); }
      catch (e) { return fallback; }
    },
    set: function (name, value) {
      try { localStorage.setItem(KEY + ":" + name, JSON.stringify(value)); } catch (e) { /* private mode */ }
    }
  };

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16); crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return ("0" + x.toString(16)).slice(-2); }).join("");
  }

  // ---- DOM -------------------------------------------------------------------------------------
  var css = el("link", { rel: "stylesheet", href: origin + "/widget.css" });
  document.head.appendChild(css);
  var root = el("div", { id: "gw-chat", "class": "gw-chat", lang: locale });
  var button = el("button", {
    id: "gw-chat-button", "class": "gw-button", type: "button",
    "aria-controls": "gw-chat-panel", "aria-expanded": "false", "aria-label": T.open
  }, T.open);
  var panel = el("section", {
    id: "gw-chat-panel", "class": "gw-panel", role: "dialog", "aria-label": T.title, hidden: ""
  });
  var header = el("header", { "class": "gw-header" });
  header.appendChild(el("h2", { "class": "gw-title" }, T.title));
  var status = el("span", { id: "gw-chat-status", "class": "gw-status", role: "status", "data-state": "connecting" }, T.connecting);
  header.appendChild(status);
  var closeButton = el("button", { "class": "gw-close", type: "button", "aria-label": T.close }, "×");
  header.appendChild(closeButton);
  var log = el("div", { id: "gw-chat-log", "class": "gw-log", role: "log", "aria-live": "polite", "aria-label": T.log, tabindex: "0" });
  var typing = el("div", { id: "gw-chat-typing", "class": "gw-typing", "aria-live": "polite", hidden: "" }, T.typing);
  var humanButton = el("button", { id: "gw-chat-human", "class": "gw-human", type: "button" }, T.human);
  var form = el("form", { "class": "gw-form" });
  var input = el("textarea", { id: "gw-chat-input", "class": "gw-input", rows: "2", "aria-label": T.input, placeholder: T.placeholder, maxlength: "4000" });
  var sendButton = el("button", { id: "gw-chat-send", "class": "gw-send", type: "submit" }, T.send);
  var attachButton = el("button", { id: "gw-chat-attach", "class": "gw-attach", type: "button", title: T.attach, "aria-label": T.attach }, "\uD83D\uDCCE");
  var fileInput = el("input", { id: "gw-chat-file", "class": "gw-file-input", type: "file", tabindex: "-1", "aria-hidden": "true" });
  form.appendChild(attachButton); form.appendChild(fileInput);
  form.appendChild(input); form.appendChild(sendButton);
  panel.appendChild(header); panel.appendChild(log); panel.appendChild(typing);
  panel.appendChild(humanButton); panel.appendChild(form);
  root.appendChild(button); root.appendChild(panel);
  document.body.appendChild(root);

  // ---- state -----------------------------------------------------------------------------------
  var token = store.get("token", null);
  var outbox = store.get("outbox", []);      // messages not acked yet: resent after reconnects
  var seen = {};                              // message ids shown
  var shownClient = {};                       // client ids shown (own messages)
  var resumedUpTo = 0;                        // history complete up to this id
  var ws = null, attempts = 0, retryTimer = null, lastTyping = 0, typingTimer = null;
  var polling = false, connecting = false;
  var previews = {};                          // client id -> [File] chosen here: shown from the local copy
  var fileItems = [];                         // every file shown: its URL released on close (below)

  function setState(state) {
    status.setAttribute("data-state", state);
    root.setAttribute("data-state", state);
    status.textContent = state === "open" ? T.online : state === "offline" ? T.offline : T.connecting;
  }

  function scroll() { log.scrollTop = log.scrollHeight; }

  function note(text) {
    log.appendChild(el("p", { "class": "gw-note" }, text)); scroll();
  }

  function addMine(item, state) {
    var row = shownClient[item.client_id];
    if (!row) {
      row = el("div", { "class": "gw-msg gw-customer", "data-client-id": item.client_id });
      row.appendChild(el("span", { "class": "gw-name" }, T.you));
      if (item.text) row.appendChild(el("p", { "class": "gw-text" }, item.text));
      var files = fileList(item.attachments, previews[item.client_id]);
      if (files) row.appendChild(files);
      log.appendChild(row); shownClient[item.client_id] = row; scroll();
    }
    row.setAttribute("data-state", state);
    return row;
  }

  // ---- files -----------------------------------------------------------------------------------
  var PICTURES = ["image/png", "image/jpeg", "image/gif", "image/webp"];  // never SVG: it can script

  /* A URL this page may use for a file: the local copy of one chosen here, or the gateway's
     bytes fetched with the token in a header (a blob: URL), so the token is never in a URL. */
  function fileSource(file, preview) {
    if (preview) return Promise.resolve(URL.createObjectURL(preview));
    if (!file.url || !token || !/^\/api\/v1\/webchat\/attachments\/[0-9a-f]{64}$/.test(file.url)) {
      return Promise.reject(new Error("no file"));
    }
    return fetch(origin + file.url, { headers: { Authorization: "Bearer " + token } }).then(function (r) {
      if (!r.ok) throw new Error("file " + r.status);
      return r.blob();
    }).then(function (blob) { return URL.createObjectURL(blob); });
  }

  /* A message's files: pictures as thumbnails (loaded while the panel is open), the rest as
     links that download them. An object URL holds its bytes until revoked: closing the widget
     revokes every file's (off its picture too), opening loads the pictures again. */
  function fileList(files, localFiles) {
    if (!files || !files.length) return null;
    var list = el("ul", { "class": "gw-files", "aria-label": T.files });
    files.forEach(function (file, i) {
      var name = String(file.name || "file");
      var type = String(file.media_type || "").toLowerCase();
      var item = el("li", { "class": "gw-file" });
      var preview = localFiles ? localFiles[i] : null;
      var link = el("a", { "class": "gw-file-link", href: "#", download: name, rel: "noopener" }, name);
      var img = PICTURES.indexOf(type) >= 0 ? el("img", { "class": "gw-thumb", alt: name }) : null;
      var source = null, made = null;
      function load() {
        if (source) return source;
        var pending = source = fileSource(file, preview).then(function (url) {
          if (source !== pending) { URL.revokeObjectURL(url); return null; }  // released meanwhile
          made = url; item.removeAttribute("data-state"); return url;
        });
        return pending;
      }
      function missing() { item.setAttribute("data-state", "missing"); }
      function showPicture() {
        load().then(function (url) { if (url) { img.src = url; link.href = url; } }, missing);
      }
      if (img) { item.appendChild(img); if (!panel.hidden) showPicture(); }
      link.addEventListener("click", function (ev) {
        if (link.getAttribute("href") !== "#") return;
        ev.preventDefault();
        load().then(function (url) { if (url) { link.href = url; link.click(); } }, missing);
      });
      fileItems.push({
        show: function () { if (img) showPicture(); },
        release: function () {
          source = null;
          if (made) { URL.revokeObjectURL(made); made = null; }
          if (img) img.removeAttribute("src");
          link.setAttribute("href", "#");
        }
      });
      item.appendChild(link);
      if (typeof file.size === "number") item.appendChild(el("span", { "class": "gw-file-size" }, " (" + Math.ceil(file.size / 1024) + " KB)"));
      list.appendChild(item);
    });
    return list;
  }

  /* The paperclip: the file is uploaded, then sent in a message with ``text`` (the words typed
     alongside, or none). Shown at once (its own copy); a refused upload marks it failed, says
     why and puts the words back in an empty box, so they go with the next try. */
  function sendFile(file, text) {
    var clientId = uuid();
    var named = { name: file.name, media_type: file.type, size: file.size };
    previews[clientId] = [file];
    var row = addMine({ client_id: clientId, text: text, attachments: [named] }, "pending");
    ensureSession().then(function (t) {
      var body = new FormData();
      body.append("file", file, file.name);
      return fetch(origin + "/api/v1/webchat/attachments", {
        method: "POST", headers: { Authorization: "Bearer " + t }, body: body
      });
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (answer) {
        if (!r.ok) throw { status: r.status, detail: answer.detail };
        return answer;
      });
    }).then(function (uploaded) {
      var item = {
        type: "message", client_id: clientId, text: text,
        attachments: [{ file: uploaded.file, name: uploaded.name, media_type: uploaded.media_type }]
      };
      outbox.push(item); store.set("outbox", outbox);
      send(item);
      connect();
    }, function (err) {
      row.setAttribute("data-state", "failed");
      if (text && !input.value) input.value = text;
      var status = err && err.status;
      if (status === 413) note(T.fileTooLarge);
      else if (status === 429) note(T.rateLimited);
      else note(T.uploadFailed + ((err && err.detail) || (err && err.message) || ""));
    });
  }

  function show(frame) {
    if (frame.message_id !== null && frame.message_id !== undefined) {
      if (seen[frame.message_id]) return;
      seen[frame.message_id] = true;
    }
    if (frame.author === "customer") {
      var mine = addMine({ client_id: frame.client_id || "m" + frame.message_id, text: frame.text, attachments: frame.attachments }, "sent");
      mine.setAttribute("data-message-id", frame.message_id);
      return;
    }
    if (frame.author === "agent") typing.hidden = true;
    var row = el("div", { "class": "gw-msg gw-" + (frame.author || "system") });
    if (frame.message_id !== null && frame.message_id !== undefined) row.setAttribute("data-message-id", frame.message_id);
    if (frame.author !== "system") {
      var who = frame.author === "agent" ? (frame.name || T.agent) : T.bot;
      row.appendChild(el("span", { "class": "gw-name" }, who));
    }
    if (frame.quote) row.appendChild(quoteBlock(frame.quote));
    if (frame.text || !frame.attachments || !frame.attachments.length) row.appendChild(el("p", { "class": "gw-text" }, frame.text));
    var files = fileList(frame.attachments, null);
    if (files) row.appendChild(files);
    if (frame.author === "bot" && frame.message_id && !frame.choices) row.appendChild(feedbackBox(frame));
    log.appendChild(row);
    if (frame.kind === "survey" && frame.ticket) log.appendChild(ratingBox(frame.ticket));
    scroll();
  }

  /* The customer's message an agent's reply answers (the widget cannot point at it): its words
     on one line, cut to about 120 characters, as text (they are the customer's). */
  function quoteBlock(words) {
    var chars = Array.from(String(words).replace(/\s+/g, " ").trim());  // an emoji stays whole
    var text = chars.length > 120 ? chars.slice(0, 120).join("") + "\u2026" : chars.join("");
    return el("blockquote", { "class": "gw-quote" }, text);
  }

  function feedbackBox(frame) {
    var box = el("div", { "class": "gw-feedback", role: "group", "aria-label": T.helpful });
    if (frame.helpful === true || frame.helpful === false) {
      box.appendChild(el("span", null, T.thanks)); return box;
    }
    box.appendChild(el("span", null, T.helpful));
    [[true, T.yes], [false, T.no]].forEach(function (pair) {
      var b = el("button", { type: "button", "class": "gw-helpful-" + (pair[0] ? "yes" : "no") }, pair[1]);
      b.addEventListener("click", function () {
        send({ type: "feedback", message_id: frame.message_id, helpful: pair[0], client_id: uuid() });
        while (box.firstChild) box.removeChild(box.firstChild);
        box.appendChild(el("span", null, T.thanks));
      });
      box.appendChild(b);
    });
    return box;
  }

  function ratingBox(ticket) {
    var box = el("form", { "class": "gw-rating", "aria-label": T.rateTitle });
    box.appendChild(el("p", null, T.rateTitle + " (" + ticket + ")"));
    var stars = el("div", { role: "radiogroup", "aria-label": T.rateTitle, "class": "gw-stars" });
    var score = 0;
    var starButtons = [];
    for (var i = 1; i <= 5; i++) {
      (function (n) {
        var s = el("button", { type: "button", role: "radio", "aria-checked": "false", "aria-label": n + " " + T.star, "class": "gw-star" }, "★");
        s.addEventListener("click", function () {
          score = n;
          starButtons.forEach(function (b, k) {
            b.setAttribute("aria-checked", String(k + 1 === n));
            b.setAttribute("data-on", String(k < n));
          });
        });
        starButtons.push(s); stars.appendChild(s);
      })(i);
    }
    box.appendChild(stars);
    var comment = el("textarea", { "aria-label": T.comment, placeholder: T.comment, rows: "2", maxlength: "2000" });
    box.appendChild(comment);
    box.appendChild(el("button", { type: "submit" }, T.submit));
    box.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (!score) return;
      send({ type: "rating", ticket: ticket, score: score, comment: comment.value, client_id: uuid() });
      box.replaceWith(el("p", { "class": "gw-note" }, T.rated));
    });
    return box;
  }

  function onFrame(frame) {
    if (frame.type === "message") show(frame);
    else if (frame.type === "ack") {
      var pending = outbox.filter(function (m) { return m.client_id === frame.client_id; });
      if (pending.length) {
        outbox = outbox.filter(function (m) { return m.client_id !== frame.client_id; });
        store.set("outbox", outbox);
        var row = addMine(pending[0], "sent");
        row.setAttribute("data-message-id", frame.message_id);
        seen[frame.message_id] = true;
      }
    } else if (frame.type === "resumed") {
      resumedUpTo = Math.max(resumedUpTo, frame.after || 0);
    } else if (frame.type === "typing") {
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(function () { typing.hidden = true; }, 5000);
    } else if (frame.type === "error") {
      var failed = frame.client_id && outbox.filter(function (m) { return m.client_id === frame.client_id; })[0];
      if (frame.code === "too_large" || frame.code === "invalid") {
        if (failed) {
          outbox = outbox.filter(function (m) { return m !== failed; }); store.set("outbox", outbox);
          addMine(failed, "failed");
        }
        note(frame.code === "too_large" ? T.tooLarge : frame.detail);
      } else if (frame.code === "rate_limited") {
        note(T.rateLimited);
        if (failed) setTimeout(function () { if (outbox.indexOf(failed) >= 0) send(failed); }, 2000);
      } else if (failed) {
        addMine(failed, "failed"); note(T.failed);
      }
    }
  }

  // ---- transport -------------------------------------------------------------------------------
  function send(frame) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(frame)); return; }
    if (!window.WebSocket && token && frame.type !== "typing") {
      fetch(origin + "/api/v1/webchat/messages", {
        method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
        body: JSON.stringify(frame)
      }).then(function (r) { return r.json(); }).then(function (body) {
        onFrame(body.error ? { type: "error", code: body.error, detail: body.detail, client_id: frame.client_id } : body);
      }).catch(function () { /* kept in the outbox; resent on the next poll */ });
    }
  }

  var sessionPromise = null;
  function ensureSession() {
    if (token) return Promise.resolve(token);
    if (sessionPromise) return sessionPromise;
    sessionPromise = fetch(origin + "/api/v1/webchat/sessions", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ locale: locale })
    }).then(function (r) {
      if (!r.ok) throw new Error("session " + r.status);
      return r.json();
    }).then(function (body) {
      token = body.token; store.set("token", token); sessionPromise = null; return token;
    }, function (err) { sessionPromise = null; throw err; });
    return sessionPromise;
  }

  function checkToken() {
    // A handshake that keeps failing may mean the token is no longer valid (the gateway's key
    // changed): ask over HTTP, which says 401 for a bad token, and start a new session if so.
    if (!token) return;
    fetch(origin + "/api/v1/webchat/messages", {
      method: "POST", headers: { "Content-Type": "application/json", Authorization: "Bearer " + token }, body: "null"
    }).then(function (r) {
      if (r.status === 401) { token = null; store.set("token", null); }
    }).catch(function () { /* the gateway is down: keep the token */ });
  }

  function retry() {
    setState("offline");
    clearTimeout(retryTimer);
    if (attempts === 2) checkToken();
    // Exponential backoff with jitter, capped at 15 s (like gateway/backoff.py).
    var delay = Math.min(15000, 500 * Math.pow(2, attempts)) * (1 + 0.2 * Math.random());
    attempts += 1;
    retryTimer = setTimeout(connect, delay);
  }

  function connect() {
    if (!window.WebSocket) { poll(); return; }
    if (connecting || (ws && ws.readyState <= 1)) return;
    connecting = true;
    clearTimeout(retryTimer);
    setState("connecting");
    ensureSession().then(function (t) {
      connecting = false;
      var url = origin.replace(/^http/, "ws") + "/api/v1/webchat/ws?token=" + encodeURIComponent(t);
      ws = new WebSocket(url);
      ws.onopen = function () {
        attempts = 0; setState("open");
        ws.send(JSON.stringify({ type: "resume", after: resumedUpTo }));
        outbox.forEach(function (m) { ws.send(JSON.stringify(m)); });
      };
      ws.onmessage = function (ev) {
        var frame; try { frame = JSON.parse(ev.data); } catch (e) { return; }
        onFrame(frame);
      };
      ws.onclose = function () { ws = null; retry(); };
    }).catch(function () { connecting = false; retry(); });
  }

  function poll() {   // HTTP fallback for browsers without WebSocket: long poll
    if (polling) return;
    polling = true;
    ensureSession().then(function (t) {
      setState("open");
      outbox.forEach(send);
      return fetch(origin + "/api/v1/webchat/messages?after=" + resumedUpTo, { headers: { Authorization: "Bearer " + t } });
    }).then(function (r) { return r.json(); }).then(function (body) {
      (body.messages || []).forEach(onFrame);
      resumedUpTo = Math.max(resumedUpTo, body.after || 0);
      attempts = 0; polling = false; poll();
    }).catch(function () { polling = false; setState("offline"); setTimeout(poll, Math.min(15000, 500 * Math.pow(2, attempts++))); });
  }

  function submit(text, handoff) {
    text = (text || "").trim();
    if (!text) return;
    var item = { type: "message", client_id: uuid(), text: text };
    if (handoff) item.handoff = true;
    outbox.push(item); store.set("outbox", outbox);
    addMine(item, "pending");
    send(item);
    connect();
  }

  // ---- events ----------------------------------------------------------------------------------
  function open() {
    panel.hidden = false; button.setAttribute("aria-expanded", "true");
    root.setAttribute("data-open", "true");
    fileItems.forEach(function (f) { f.show(); });
    connect(); input.focus();
  }
  function close() {
    panel.hidden = true; button.setAttribute("aria-expanded", "false");
    root.setAttribute("data-open", "false"); button.focus();
    // Nothing is shown now: the files' bytes are let go (a long chat's pictures add up).
    fileItems.forEach(function (f) { f.release(); });
  }
  button.addEventListener("click", function () { if (panel.hidden) open(); else close(); });
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", function (ev) { if (ev.key === "Escape") close(); });
  form.addEventListener("submit", function (ev) { ev.preventDefault(); submit(input.value); input.value = ""; });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); submit(input.value); input.value = ""; }
  });
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTyping > 3000 && ws && ws.readyState === 1) { lastTyping = now; send({ type: "typing" }); }
  });
  humanButton.addEventListener("click", function () { submit(T.humanText, true); });
  attachButton.addEventListener("click", function () { fileInput.click(); });
  fileInput.addEventListener("change", function () {
    var chosen = Array.prototype.slice.call(fileInput.files || []);
    fileInput.value = "";  // so that choosing the same file again fires "change" again
    if (!chosen.length) return;
    // Words typed before the paperclip go with the file, in the same message.
    var text = input.value.trim();
    input.value = "";
    chosen.forEach(function (file, i) { sendFile(file, i ? "" : text); });
  });

  setState("connecting");
  if (token) connect();   // a returning visitor: history (resume) and any unsent messages
  if (store.get("open", false)) open();
  button.addEventListener("click", function () { store.set("open", !panel.hidden); });
  closeButton.addEventListener("click", function () { store.set("open", false); });
})();
