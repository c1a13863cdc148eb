"""A reply that only thanks or acknowledges ("Thanks!", "ok 👍", "好的，谢谢"): not a new request.

Answered such a reply is the customer closing the loop, and our "resolved" notice tells them
there is nothing to do if all is well. Read as a request it reopened the resolved ticket and
handed it back to an agent, or escalated the conversation the knowledge base had just answered
(Zammad and Chatwoot both reopen on any reply). Ingest stores it on the ticket and leaves the
ticket as it is.

The test is strict on purpose: every word must be a thanks, an "ok" or a polite filler, and
one of the first two must be there; anything else ("thanks, but it broke again", "ok, where is
my refund?", "不好", "no thanks") is a message for people. A false "yes" would hide a request
on a resolved ticket; a false "no" only costs the reopening there was before.
"""

from __future__ import annotations

import re
import unicodedata

from gateway.models import InboundMessage

_MAX_LENGTH = 80
"""Longer than any thanks: the common message pays one comparison."""

# English: words that acknowledge (one must be there) and words that may come with them.
_EN_ACK = frozenset(
    [
        "thanks",
        "thank",
        "thx",
        "thnx",
        "thanx",
        "tks",
        "ty",
        "tysm",
        "tyvm",
        "cheers",
        "appreciated",
        "appreciate",
        "merci",
        "gracias",
        "danke",
        "ok",
        "okay",
        "okey",
        "okie",
        "kk",
        "k",
        "alright",
        "great",
        "perfect",
        "awesome",
        "excellent",
        "cool",
        "nice",
        "good",
        "fine",
        "wonderful",
        "brilliant",
        "lovely",
        "amazing",
        "noted",
        "understood",
        "gotcha",
        "got",
        "solved",
        "resolved",
        "fixed",
        "sorted",
        "works",
        "worked",
        "helps",
        "helped",
        "helpful",
    ]
)
_EN_FILLER = frozenset(
    [
        "you",
        "u",
        "so",
        "much",
        "very",
        "really",
        "a",
        "lot",
        "lots",
        "again",
        "for",
        "the",
        "your",
        "all",
        "that",
        "this",
        "it",
        "that's",
        "it's",
        "now",
        "everything",
        "guys",
        "team",
        "sir",
        "madam",
        "help",
        "info",
        "information",
        "reply",
        "answer",
        "quick",
        "support",
        "yes",
        "yeah",
        "yep",
        "sure",
        "indeed",
        "many",
        "big",
        "million",
        "once",
        "kind",
        "of",
    ]
)
# Chinese has no spaces: these phrases are taken out of each run of Chinese, longest first,
# and nothing may be left.
_ZH_ACK = (
    "谢谢",
    "多谢",
    "感谢",
    "谢了",
    "好的",
    "好滴",
    "好嘞",
    "好了",
    "好",
    "嗯嗯",
    "嗯",
    "知道了",
    "明白了",
    "明白",
    "收到",
    "了解了",
    "了解",
    "懂了",
    "可以了",
    "没问题了",
    "没问题",
    "没事了",
    "解决了",
    "已解决",
    "行",
)
_ZH_FILLER = (
    "非常",
    "十分",
    "太",
    "您们",
    "你们",
    "您",
    "你",
    "客服",
    "的",
    "帮助",
    "帮忙",
    "啦",
    "了",
    "哈",
    "呀",
    "啊",
    "哦",
    "噢",
    "喔",
    "呢",
    "是",
    "对",
)
_ZH_PHRASES = re.compile(
    "|".join(map(re.escape, sorted(_ZH_ACK + _ZH_FILLER, key=len, reverse=True)))
)
_ZH_ACK_CHARS = re.compile("|".join(map(re.escape, _ZH_ACK)))
# Emoji that thank or approve; each alone is an acknowledgement. (Skin tones and the
# variation selector are dropped first.)
_EMOJI = frozenset("👍👌🙏😊🙂☺😀😃😄😁🥰😍❤💯✅🤝👏🎉💪🆗")
_EMOJI_MODIFIERS = re.compile("[\ufe0f\ufe0e\u200d\U0001f3fb-\U0001f3ff]")
_TOKENS = re.compile(r"[a-z]+(?:'[a-z]+)?|[\u3400-\u9fff]+|\S")


def is_acknowledgement(text: str) -> bool:
    """Whether ``text`` only thanks or acknowledges (in English or Chinese, emoji allowed).

    >>> is_acknowledgement("Thank you so much! 👍")
    True
    >>> is_acknowledgement("好的，谢谢")
    True
    >>> is_acknowledgement("thanks, but it still does not work")
    False
    """
    if len(text) > _MAX_LENGTH:
        return False
    norm = unicodedata.normalize("NFKC", text).casefold().replace("\u2019", "'")
    norm = _EMOJI_MODIFIERS.sub("", norm)
    acknowledged = False
    for word in _TOKENS.findall(norm):
        if word in _EN_ACK or word in _EMOJI:
            acknowledged = True
        elif word == "?":
            return False  # "ok?", "is it resolved?": a question for people
        elif word in _EN_FILLER or word == "~" or unicodedata.category(word[0])[0] == "P":
            continue
        elif "\u3400" <= word[0] <= "\u9fff":
            if "你好" in word or "您好" in word or "们好" in word:
                return False  # a greeting: the customer waits for an answer
            if _ZH_PHRASES.sub("", word):
                return False  # a character that is neither thanks nor filler
            acknowledged = acknowledged or _ZH_ACK_CHARS.search(word) is not None
        else:
            return False
    return acknowledged


def acknowledges(message: InboundMessage) -> bool:
    """Whether ``message`` is only a thanks: typed, with no file, and not words a channel
    stands in for something else with, nor ones meant for people (``text_from``); or a
    sticker whose emoji is a thanks (the sticker is its file: a 👍 sticker is how many say it).
    """
    text_from = message.channel_meta.get("text_from")
    if text_from == "sticker":
        return is_acknowledgement(message.text)
    return not message.attachments and not text_from and is_acknowledgement(message.text)
