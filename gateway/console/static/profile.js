/* The customer's channels as the desk's profile shows them: each channel they wrote from, the
 * name they have there (the contact's ``usernames`` from the API: Telegram's @username of their
 * latest message on it, on any of their tickets, none once they removed it, so an agent can
 * find the person in Telegram), and whether it still reaches them. thread.js calls channels() when it
 * shows a ticket.
 *
 * Same rule as console.js: the customer's words go on the page with textContent only. A name
 * becomes a link only when it matches the channel's own rule for names, so nothing else ever
 * makes its address.
 */
"use strict";
(function () {
  /* Where a channel's people have a page, and what a name there is made of: Telegram's
     usernames are 5-32 of a-z, 0-9 and _ (https://core.telegram.org/method/account.checkUsername),
     their page https://t.me/<name>. */
  var PAGES = {
    telegram: { name: /^[A-Za-z0-9_]{5,32}$/, url: "https://t.me/" }
  };

  /* The name the contact goes by on ``channel`` (the API's ``usernames``), or null. */
  function username(contact, channel) {
    var names = contact.usernames || {};
    var name = Object.prototype.hasOwnProperty.call(names, channel) ? names[channel] : null;
    return typeof name === "string" && name ? name : null;
  }

  /* "@name" as a link to the person's page (a new tab) when the name is one by the channel's
     rule, else as text. */
  function handle(channel, name) {
    var page = PAGES[channel];
    if (!page || !page.name.test(name)) return document.createTextNode("@" + name);
    var link = document.createElement("a");
    link.className = "profile-handle";
    link.textContent = "@" + name;
    link.href = page.url + name;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    return link;
  }

  /* Fills ``node`` with the contact's channels: "Email, Telegram (@li_xiao; unreachable;
     notices by email)". */
  function channels(node, detail, t) {
    var c = detail.contact;
    var unreachable = c.unreachable || [];
    /* Notices and surveys owed on a channel the customer cannot be written to on (a Telegram
       user who blocked the bot or deleted their account: the API does not say which, so
       neither does this) go to an email address they wrote from, if there is one
       (gateway/outbox_fallback.py); an agent's replies do not. */
    var byEmail = c.channels.indexOf("email") >= 0 && unreachable.indexOf("email") < 0;
    node.textContent = "";
    c.channels.forEach(function (ch, n) {
      if (n) node.appendChild(document.createTextNode(", "));
      node.appendChild(document.createTextNode(t("channel." + ch)));
      var note = unreachable.indexOf(ch) < 0 ? "" :
        t("unreachable") + (byEmail ? "; " + t("notices_by_email") : "");
      var name = username(c, ch);
      if (!name && !note) return;
      node.appendChild(document.createTextNode(" ("));
      if (name) node.appendChild(handle(ch, name));
      node.appendChild(document.createTextNode((name && note ? "; " : "") + note + ")"));
    });
    if (!c.channels.length) node.textContent = "—";
  }

  window.GW_PROFILE = { channels: channels };
})();
