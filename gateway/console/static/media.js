/* What a message carries besides its words, as the thread shows it: its files (a photo as a
 * picture, a voice note, audio or video as a player, a Telegram video sticker playing by itself,
 * every file as a download link with its name and size) and a shared location's map
 * link (OpenStreetMap, where the Telegram channel's text points too); an album's parts as one
 * message. thread.js builds each message around what this returns.
 *
 * Same rule as console.js: file names and the customer's words go on the page with textContent
 * or as attribute values only, and a map link's address is made of numbers only, never taken
 * from the message.
 */
"use strict";
(function () {
  /* Shown as pictures: raster types a browser decodes without running anything (an SVG can
     carry script, so it stays a link; the download route serves it as bytes anyway). */
  var PICTURES = ["image/jpeg", "image/png", "image/gif", "image/webp"];
  /* Played: audio and video (a Telegram voice note is OGG Opus, a video or round video note
     MP4) the browser says it may play; a type it cannot stays a link only, not a dead player.
     preload="metadata": the length shows, the rest downloads when the agent presses play. */
  function player(type) {
    var kind = type.indexOf("audio/") === 0 ? "audio" : type.indexOf("video/") === 0 ? "video" : null;
    if (!kind) return null;
    var node = document.createElement(kind);
    return node.canPlayType(type) ? node : null;
  }
  /* A Telegram video sticker: a sticker message's (channel_meta.text_from, parse.py) WebM file.
     Telegram's animated .tgs stickers are Lottie, which only its apps play: a link. */
  function videoSticker(m, a) {
    return !!m.channel_meta && m.channel_meta.text_from === "sticker" && mediaType(a) === "video/webm";
  }
  /* Shown as Telegram shows a video sticker: a small picture that moves by itself, sized like a
     still sticker's picture. Muted and inline, so browsers let it start without a click
     (https://developer.chrome.com/blog/autoplay); no controls: it is a sticker, not a clip. */
  function asSticker(video) {
    video.className = "msg-sticker";
    video.muted = video.defaultMuted = true;
    video.loop = video.autoplay = true;
    video.playsInline = true;
    video.setAttribute("playsinline", "");
    video.preload = "auto";
  }

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function kilobytes(bytes) { return Math.ceil(bytes / 1024) + " KB"; }
  function mediaType(a) { return String(a.content_type || "").split(";")[0].trim().toLowerCase(); }
  function fileUrl(number, m, a) {
    return "/api/v1/tickets/" + encodeURIComponent(number) + "/messages/" + Number(m.id) +
      "/attachments/" + Number(a.index);
  }

  /* The thread's messages as the customer sent them, each entry a list of messages: an album's
     parts (channel_meta.part_of, Telegram's media group: a message a photo, the caption on any
     one of them) as one entry where its first part is, every other message alone. */
  function albums(messages) {
    var entries = [], groups = new Map();
    messages.forEach(function (m) {
      var partOf = m.author_type === "customer" && m.channel_meta ? m.channel_meta.part_of : null;
      if (typeof partOf === "string" && groups.has(partOf)) { groups.get(partOf).push(m); return; }
      var parts = [m];
      if (typeof partOf === "string") groups.set(partOf, parts);
      entries.push(parts);
    });
    return entries;
  }

  /* The files of a message (or of an album's parts), or null: each a download link (a name
     without a link when the channel kept no bytes), a photo also as a picture (a click on it
     shows it larger, another smaller), audio and video also as a player. */
  function attachments(parts, number, t) {
    var listed = [];
    parts.forEach(function (m) {
      (m.attachments || []).forEach(function (a) { listed.push({ m: m, a: a }); });
    });
    if (!listed.length) return null;
    var files = el("ul", "msg-attachments");
    files.setAttribute("aria-label", t("attachments"));
    listed.forEach(function (file) {
      var m = file.m, a = file.a;
      var item = files.appendChild(el("li", "attachment"));
      var name = String(a.filename || "?");
      if (a.stored && PICTURES.indexOf(mediaType(a)) >= 0) {
        item.classList.add("attachment-photo");
        var photo = item.appendChild(el("img", "msg-photo"));
        photo.alt = name;
        photo.loading = "lazy";
        photo.src = fileUrl(number, m, a);
        photo.addEventListener("click", function () { photo.classList.toggle("msg-photo-large"); });
        item.appendChild(el("br"));
      }
      var media = a.stored ? player(mediaType(a)) : null;
      if (media) {
        item.classList.add("attachment-media");
        if (media.tagName === "VIDEO" && videoSticker(m, a)) {
          asSticker(media);
        } else {
          media.className = "msg-media";
          media.controls = true;
          media.preload = "metadata";
        }
        media.title = name;
        media.src = fileUrl(number, m, a);
        item.appendChild(media);
        item.appendChild(el("br"));
      }
      var link = item.appendChild(el(a.stored ? "a" : "span", null, name));
      if (a.stored) link.href = fileUrl(number, m, a);
      if (typeof a.size === "number") item.appendChild(document.createTextNode(" (" + kilobytes(a.size) + ")"));
    });
    return files;
  }

  /* A shared location's coordinates (channel_meta.location, Telegram's), or null: numbers only,
     and on the globe. */
  function coordinates(m) {
    var place = m.channel_meta && m.channel_meta.location;
    if (!place || typeof place !== "object") return null;
    var lat = place.latitude, lon = place.longitude;
    if (typeof lat !== "number" || typeof lon !== "number" || !isFinite(lat) || !isFinite(lon)) return null;
    if (Math.abs(lat) > 90 || Math.abs(lon) > 180) return null;
    return { lat: lat.toFixed(6), lon: lon.toFixed(6) };
  }
  function mapUrl(at) {
    return "https://www.openstreetmap.org/?mlat=" + at.lat + "&mlon=" + at.lon +
      "#map=17/" + at.lat + "/" + at.lon;
  }

  /* The words of a message (an album's: its caption). A location's are its place and the map
     address it was stored with (channels/telegram/parse.py): the address is left out here,
     mapLink() links it. */
  function text(parts) {
    var words = parts.map(function (m) {
      var said = String(m.text || "");
      var at = coordinates(m);
      if (at) {
        var lines = said.split("\n");
        if (lines[lines.length - 1] === mapUrl(at)) said = lines.slice(0, -1).join("\n");
      }
      return said;
    }).filter(function (said) { return parts.length === 1 || said !== ""; });
    return el("div", "msg-text", words.join("\n"));
  }

  /* A shared location as a link to the map (a new tab), or null. */
  function mapLink(m, t) {
    var at = coordinates(m);
    if (!at) return null;
    var link = el("a", "msg-map", t("open_map"));
    link.href = mapUrl(at);
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }

  window.GW_MEDIA = { albums: albums, attachments: attachments, text: text, mapLink: mapLink };
})();
