"""What the bot says by itself, in Chinese (the shop's default) and English.

The language is the user's Telegram ``language_code``, picked as the notice templates pick
theirs (``zh``, ``zh-hans``, or unknown: Chinese; ``en``, ``en-US``, any other: English); when
Telegram does not send one, the contact's (``inbound.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

from workers.templates import pick_locale

TEXTS: Mapping[str, Mapping[str, str]] = {
    "welcome": {
        "zh-CN": "您好，欢迎联系客服！请直接发送您的问题，我们会尽快回复。\n"
        "/status 查看您的工单 · /new 开始新的问题 · /human 转人工客服",
        "en": "Hello, welcome to customer service! Send us your question and we will answer "
        "shortly.\n/status your tickets · /new start a new question · /human talk to a person",
    },
    "help": {
        "zh-CN": "请直接发送您的问题（文字、图片或文件均可），我们会尽快回复。\n"
        "/status 查看您的工单 · /new 开始新的问题 · /human 转人工客服",
        "en": "Just send us your question (text, a photo or a file) and we will answer "
        "shortly.\n/status your tickets · /new start a new question · /human talk to a person",
    },
    "status_none": {
        "zh-CN": "您目前没有处理中的工单。",
        "en": "You have no open tickets.",
    },
    "status_header": {
        "zh-CN": "您处理中的工单：",
        "en": "Your open tickets:",
    },
    "status_more": {
        "zh-CN": "……另有 {count} 个处理中的工单。",
        "en": "…and {count} more open tickets.",
    },
    "new_ticket": {
        "zh-CN": "好的，您的下一条消息将开启一个新的工单。",
        "en": "OK, your next message will start a new ticket.",
    },
    "human_nothing_open": {
        "zh-CN": "请先描述您的问题，我们会为您转接人工客服。",
        "en": "Please describe your question first; a person will then take it over.",
    },
    "group_unsupported": {
        "zh-CN": "抱歉，本客服机器人只在私聊中服务，请私聊我发送您的问题。",
        "en": "Sorry, this support bot only works in private chats: please message me directly.",
    },
    "thanks": {"zh-CN": "谢谢您的反馈！", "en": "Thank you for your feedback!"},
    "which_one": {"zh-CN": "您想问的是下面哪一个？", "en": "Which of these is your question?"},
    "helpful_question": {"zh-CN": "这个回答有帮助吗？", "en": "Did this help?"},
    "yes": {"zh-CN": "有帮助", "en": "Yes"},
    "no": {"zh-CN": "没有，转人工", "en": "No, ask a person"},
}

STATUS_NAMES: Mapping[str, Mapping[str, str]] = {
    "new": {"zh-CN": "已受理", "en": "received"},
    "assigned": {"zh-CN": "已分派", "en": "assigned"},
    "in_progress": {"zh-CN": "处理中", "en": "in progress"},
    "waiting_customer": {"zh-CN": "等待您的回复", "en": "waiting for your reply"},
    "reopened": {"zh-CN": "跟进中", "en": "follow-up"},
    "resolved": {"zh-CN": "已解决", "en": "resolved"},
    "closed": {"zh-CN": "已关闭", "en": "closed"},
}


def text(key: str, locale: str | None) -> str:
    """The bot's text ``key`` in the language of ``locale``."""
    return TEXTS[key][pick_locale(locale)]


def status_name(status: str, locale: str | None) -> str:
    return STATUS_NAMES.get(status, {}).get(pick_locale(locale), status)
