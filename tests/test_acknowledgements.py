"""A reply that only thanks: told apart from one that asks for something."""

from __future__ import annotations

import pytest

from gateway.ingest.acknowledgements import acknowledges, is_acknowledgement
from tests.factories import inbound

THANKS = [
    "Thanks!",
    "thank you so much 👍",
    "ok",
    "OK thanks",
    "got it, thx",
    "It works now, thanks!",
    "Thank you very much for your quick reply",
    "that’s perfect, cheers",  # a typographic apostrophe
    "👍🏻",  # with a skin tone
    "ok 🙏",
    "好的，谢谢",
    "谢谢您的帮助！",
    "太好了",
    "明白了，谢谢你们",
    "好的~",
    "嗯嗯 好的",
]

NOT_THANKS = [
    "",
    "thanks, but it still does not work",
    "Thanks! Also, can I change my address",
    "ok, where is my refund?",
    "ok?",
    "is it resolved?",
    "no thanks",
    "thanks for nothing",
    "thanks 😡",
    "👎",
    "good morning",
    "help",
    "5",
    "my order 123 thanks",
    "不好",
    "好像不行",
    "谢谢，还有一个问题",
    "好的，请问什么时候发货",
    "人工",
    "您好",  # a greeting waits for an answer
    "客服你好",
    "is it fixed",  # a question without its question mark
    "was it resolved",
    "thanks " * 20,  # too long to be only a thanks
]


@pytest.mark.parametrize("text", THANKS)
def test_a_thanks_is_an_acknowledgement(text: str) -> None:
    assert is_acknowledgement(text)


@pytest.mark.parametrize("text", NOT_THANKS)
def test_anything_more_is_a_message_for_people(text: str) -> None:
    assert not is_acknowledgement(text)


def test_a_file_or_words_meant_for_people_are_not_a_thanks() -> None:
    assert acknowledges(inbound(text="thanks"))
    assert not acknowledges(inbound(text="thanks", channel_meta={"text_from": "human"}))
    photo = {"filename": "p.jpg", "content_type": "image/jpeg", "size": 3}
    assert not acknowledges(inbound(text="thanks", attachments=[photo]))
