"""``parse_update``, ``split_text`` and ``blockquote``: pure functions, tested from the fixture
payloads."""

from __future__ import annotations

from typing import Any

import pytest

from channels.base import ChannelInputError
from channels.telegram.blockquote import QUOTED_CHARS, blockquote
from channels.telegram.keyboards import (
    CHOICE_LABEL_CHARS,
    Feedback,
    FeedbackKind,
    choices_keyboard,
    parse_callback,
)
from channels.telegram.parse import Ignored, addressee, parse_update
from channels.telegram.split import LIMIT, split_text
from gateway.models import Attachment, Channel, InboundMessage
from tests.channels.telegram.conftest import load_fixture, private_text_with


def parsed(name: str) -> InboundMessage:
    return parsed_from(load_fixture(name))


def parsed_from(update: dict[str, Any]) -> InboundMessage:
    result = parse_update(update)
    assert isinstance(result, InboundMessage), result
    return result


def testprivate_text_with() -> None:
    message = parsed("private_text")
    assert message.channel is Channel.TELEGRAM
    assert message.external_id == "888:11"
    assert message.external_user_id == "888"
    assert message.thread_key == "888"
    assert message.text == "我的订单 #A1024 还没有发货，请帮我查一下"
    assert message.sender_name == "小李"
    assert message.locale == "zh-hans"
    assert dict(message.channel_meta) == {
        "update_id": 1001,
        "chat_id": 888,
        "message_id": 11,
        "username": "",
    }


def test_the_senders_username_is_kept_and_none_is_said() -> None:
    # An agent could not find the customer in Telegram: the username came and was dropped.
    update = load_fixture("private_text")
    update["message"]["from"]["username"] = "li_xiao"
    assert parsed_from(update).channel_meta["username"] == "li_xiao"
    # One they removed still showed: a message without one was taken to say nothing.
    assert parsed("private_text").channel_meta["username"] == ""  # optional in the Bot API
    press = load_fixture("callback_query")
    assert parsed_from(press).channel_meta["username"] == ""
    press["callback_query"]["from"]["username"] = "li_xiao"
    assert parsed_from(press).channel_meta["username"] == "li_xiao"


def test_photo_with_caption_takes_the_largest_size() -> None:
    message = parsed("photo_with_caption")
    assert message.text == "收到的商品外壳破了"
    assert message.attachments == (
        Attachment(
            filename="photo_pb.jpg",
            content_type="image/jpeg",
            size=20480,
            ref="telegram-file:photo-big",
        ),
    )


@pytest.mark.parametrize(
    ("max_bytes", "file_id"),
    [(None, "photo-big"), (20480, "photo-big"), (10_000, "photo-small"), (1000, "photo-big")],
)
def test_a_photo_takes_its_largest_size_under_the_cap(max_bytes: int | None, file_id: str) -> None:
    # Over the cap, the largest size was dropped whole though a smaller one fitted; with none
    # under it, the largest stays (kept as a name without bytes).
    message = parse_update(load_fixture("photo_with_caption"), max_bytes=max_bytes)
    assert isinstance(message, InboundMessage)
    [attachment] = message.attachments
    assert attachment.ref == f"telegram-file:{file_id}"


def test_an_album_item_says_which_album_it_is_part_of() -> None:
    update = load_fixture("photo_with_caption")
    update["message"]["media_group_id"] = "13579"
    assert parsed_from(update).channel_meta["part_of"] == "13579"
    assert "part_of" not in parsed("photo_with_caption").channel_meta


def test_document_and_voice() -> None:
    document = parsed("document")
    assert document.text == "Here is my invoice"
    assert document.attachments[0].filename == "invoice-A1024.pdf"
    assert document.attachments[0].content_type == "application/pdf"
    voice = parsed("voice")
    assert voice.text == ""
    assert voice.attachments[0].content_type == "audio/ogg"
    assert voice.attachments[0].filename == "voice_v1.ogg"


def test_a_shared_location_is_a_place_an_agent_can_open() -> None:
    point = parsed("location")
    assert point.text == (
        "📍 31.230416, 121.473701\n"
        "https://www.openstreetmap.org/?mlat=31.230416&mlon=121.473701#map=17/31.230416/121.473701"
    )
    assert point.channel_meta["location"] == {"latitude": 31.230416, "longitude": 121.473701}
    venue = parsed("venue")
    assert venue.text.startswith("📍 Oriental Pearl Tower, 1 Century Avenue, Pudong\nhttps://")
    assert venue.channel_meta["location"]["title"] == "Oriental Pearl Tower"


def test_a_live_locations_moves_are_not_edits() -> None:
    """A live location edits its message every few seconds for hours: not the customer's
    words changing."""
    assert parse_update(load_fixture("live_location_moved")) == Ignored(1017, "live_location")


def test_a_sticker_is_a_file_with_its_emoji_as_the_text() -> None:
    sticker = parsed("sticker")
    assert sticker.text == "👍"
    assert sticker.attachments == (
        Attachment(
            filename="sticker_st1.webp",
            content_type="image/webp",
            size=9,
            ref="telegram-file:sticker-1",
        ),
    )
    update = load_fixture("sticker")
    update["message"]["sticker"].update(is_video=True)
    assert parsed_from(update).attachments[0].content_type == "video/webm"
    update["message"]["sticker"].update(is_video=False, is_animated=True)
    assert parsed_from(update).attachments[0].filename == "sticker_st1.tgs"


def test_a_message_with_nothing_we_read_is_ignored() -> None:
    """A service message (the user set the chat's auto-delete timer): nothing anyone wrote.
    (A dice was the example here: it is stored now, ``test_polls_and_dice.py``.)"""
    update = load_fixture("private_text")
    del update["message"]["text"]
    update["message"]["message_auto_delete_timer_changed"] = {"message_auto_delete_time": 86400}
    assert parse_update(update) == Ignored(1001, "unsupported_message")


def test_edited_message_keeps_the_original_external_id() -> None:
    message = parsed("edited_message")
    assert message.external_id == "888:11"
    assert message.channel_meta["edit_date"] == 1795320060
    assert "A1025" in message.text


def test_commands_need_their_entity() -> None:
    start = parsed("command_with_entities")
    assert start.channel_meta["command"] == "start"
    assert start.locale == "en"
    status = parsed("command_addressed_to_bot")
    assert status.channel_meta["command"] == "status"
    plain = parsed("slash_text_without_entity")
    assert "command" not in plain.channel_meta  # a question that starts with a slash


def test_a_command_addressed_to_another_bot_is_text() -> None:
    update = load_fixture("command_addressed_to_bot")  # /status@gateway_test_bot
    assert addressee(update) == "gateway_test_bot"
    ours = parse_update(update, bot_username="Gateway_Test_Bot")
    assert isinstance(ours, InboundMessage) and ours.channel_meta["command"] == "status"
    theirs = parse_update(update, bot_username="other_bot")
    assert isinstance(theirs, InboundMessage) and "command" not in theirs.channel_meta
    assert theirs.text == "/status@gateway_test_bot"
    message = update.pop("message")
    update["edited_message"] = {**message, "text": message["text"] + " please", "edit_date": 1}
    edit = parse_update(update, bot_username="other_bot")
    assert isinstance(edit, InboundMessage) and "command_edit" not in edit.channel_meta
    assert edit.text == "/status@gateway_test_bot please"  # an edit of the stored text
    assert addressee(load_fixture("command_with_entities")) is None
    assert addressee({"message": {"entities": "nonsense"}}) is None


def test_a_text_links_address_follows_its_words() -> None:
    """Telegram sends a link's address beside the text: agents saw "the form" and no URL.
    Offsets count UTF-16 units: the emoji before the link is two of them."""
    update = load_fixture("private_text")
    update["message"]["text"] = "👉 the form is broken, see the form"
    update["message"]["entities"] = [
        {"type": "bold", "offset": 3, "length": 8},
        {"type": "text_link", "offset": 27, "length": 8, "url": "https://shop.example/form"},
        {"type": "text_link", "offset": 3, "length": 8, "url": "https://shop.example/f"},
    ]
    assert parsed_from(update).text == (
        "👉 the form (https://shop.example/f) is broken, see the form (https://shop.example/form)"
    )
    photo = load_fixture("photo_with_caption")
    caption = photo["message"]["caption"]
    photo["message"]["caption_entities"] = [
        {"type": "text_link", "offset": 0, "length": 1, "url": "https://t.example/x"}
    ]
    assert parsed_from(photo).text == f"{caption[0]} (https://t.example/x){caption[1:]}"


def test_the_words_after_a_command_keep_their_links_and_lose_nul() -> None:
    update = load_fixture("command_addressed_to_bot")
    message = update["message"]
    length = message["entities"][0]["length"]
    message["text"] = message["text"][:length] + " the form\x00 is broken"
    message["entities"].append(
        {"type": "text_link", "offset": length + 1, "length": 8, "url": "https://shop.example/f"}
    )
    words = parsed_from(update).channel_meta["command_args"]
    assert words == "the form (https://shop.example/f) is broken"


def test_an_edited_command_is_ignored_or_an_edit_of_its_words() -> None:
    update = load_fixture("command_addressed_to_bot")
    message = update.pop("message")
    update["edited_message"] = {**message, "edit_date": message["date"] + 60}
    assert parse_update(update) == Ignored(update["update_id"], "edited_command")
    update["edited_message"]["text"] += " please"
    edit = parse_update(update)
    assert isinstance(edit, InboundMessage)
    assert edit.text == "please"  # only the words after a command may have been stored
    assert edit.channel_meta["command_edit"] == "status"
    assert "command" not in edit.channel_meta  # an edit, not a command to carry out


def test_callback_query() -> None:
    message = parsed("callback_query")
    assert message.external_id == "cb:4382bfdwdsb323b2d9"
    assert message.text == ""
    assert message.channel_meta["callback_data"] == "h:G20261122001:n"
    assert message.thread_key == "888"


def test_own_contact_is_a_verified_phone_someone_elses_is_not() -> None:
    own = parsed("contact")
    assert (own.phone, own.phone_verified) == ("+8613800138000", True)
    other = parsed("contact_of_someone_else")
    assert (other.phone, other.phone_verified) == (None, False)
    assert other.channel_meta["contact"]["phone"] == "+8613900000000"


@pytest.mark.parametrize(
    ("name", "reason", "chat_id"),
    [("group_message", "group", -100123), ("channel_post", "channel_post", -100456)],
)
def test_groups_and_channels_are_ignored(name: str, reason: str, chat_id: int) -> None:
    assert parse_update(load_fixture(name)) == Ignored(
        load_fixture(name)["update_id"], reason, chat_id
    )


def test_a_groups_upgrade_to_a_supergroup_names_its_other_id() -> None:
    update = load_fixture("group_message")
    update["message"]["migrate_from_chat_id"] = -4567
    assert parse_update(update) == Ignored(1012, "group", -100123, linked_chat_id=-4567)


def test_malformed_update_is_the_senders_fault() -> None:
    with pytest.raises(ChannelInputError):
        parse_update({"message": {}})
    with pytest.raises(ChannelInputError):
        parse_update({"update_id": 1, "message": {"chat": {"id": 1}}})


@pytest.mark.parametrize(
    "update",
    [
        private_text_with(**{"from": "x"}),
        private_text_with(entities=["x"]),
        private_text_with(text="", sticker="x"),
        private_text_with(text="", caption="see", caption_entities=["x"]),
        {"update_id": 5, "edited_message": {**private_text_with()["message"], "from": "x"}},
    ],
    ids=["from", "entity", "sticker", "caption_entity", "edited_from"],
)
def test_a_string_where_an_object_belongs_is_a_malformed_update(update: dict[str, Any]) -> None:
    with pytest.raises(ChannelInputError) as raised:
        parse_update(update)
    assert raised.value.reason == "malformed_update"


def test_unknown_update_kinds_are_ignored() -> None:
    assert parse_update({"update_id": 5, "message_reaction": {}}) == Ignored(
        5, "unsupported_update"
    )


def test_blocking_and_unblocking_the_bot_say_the_bots_new_status() -> None:
    blocked = parse_update(load_fixture("bot_blocked"))
    assert isinstance(blocked, InboundMessage)
    assert (blocked.external_user_id, blocked.channel_meta["member_status"]) == ("888", "kicked")
    unblocked = parse_update(load_fixture("bot_unblocked"))
    assert isinstance(unblocked, InboundMessage)
    assert unblocked.channel_meta["member_status"] == "member"
    # The bot added to or removed from a group: counted, no explanation sent to it.
    in_group = load_fixture("bot_blocked")
    in_group["my_chat_member"]["chat"] = {"id": -100123, "type": "supergroup", "title": "Fans"}
    assert parse_update(in_group) == Ignored(1030, "group")


def test_callback_data() -> None:
    assert parse_callback("a:4211:n") == Feedback(FeedbackKind.HELPFUL, 0, answer_id=4211)
    assert parse_callback("a:G20261122001:n") is None
    assert parse_callback("a:²:n") is None
    # Beyond the 32-bit message ids: not ours (PostgreSQL refused to look them up).
    assert parse_callback("a:2147483647:y") == Feedback(
        FeedbackKind.HELPFUL, 1, answer_id=2**31 - 1
    )
    assert parse_callback("a:2147483648:y") is None
    assert parse_callback("k:99999999999:0") is None
    assert parse_callback("k:4212:1") == Feedback(FeedbackKind.CHOICE, 1, answer_id=4212)
    assert parse_callback("k:4212:x") is None
    [[long_one]] = choices_keyboard(4212, ["a question " * 10]).inline_keyboard
    assert (len(long_one.text), long_one.callback_data) == (CHOICE_LABEL_CHARS, "k:4212:0")
    # Keyboards sent before the answer's id was in them.
    assert parse_callback("h:G20261122001:y") == Feedback(
        FeedbackKind.HELPFUL, 1, ticket_number="G20261122001"
    )
    assert parse_callback("r:G20261122001:2") == Feedback(
        FeedbackKind.RATING, 2, ticket_number="G20261122001"
    )
    assert parse_callback("r:G20261122001:9") is None
    assert parse_callback("nonsense") is None


def test_split_keeps_short_texts_whole() -> None:
    assert split_text("hello") == ["hello"]


def test_split_on_paragraphs() -> None:
    paragraphs = [f"段落{i} " + "x" * 1500 for i in range(6)]
    parts = split_text("\n\n".join(paragraphs))
    assert all(len(p) <= LIMIT for p in parts)
    assert parts == [
        "\n\n".join(paragraphs[0:2]),
        "\n\n".join(paragraphs[2:4]),
        "\n\n".join(paragraphs[4:6]),
    ]


def test_split_without_breaks_and_with_emoji() -> None:
    text = "a" * 5000
    assert split_text(text) == ["a" * LIMIT, "a" * (5000 - LIMIT)]
    emoji = "😀" * 3000  # two UTF-16 units each: Telegram counts 6,000
    parts = split_text(emoji)
    assert [len(p) for p in parts] == [2048, 952]
    assert "".join(parts) == emoji


def test_text_going_before_the_first_part_leaves_it_less_room() -> None:
    paragraphs = ["x" * 2000, "y" * 2000, "z" * 100]
    # Without the room taken, the first part would be the first two paragraphs (4,002).
    x, y, z = paragraphs
    assert split_text("\n\n".join(paragraphs), ahead=200) == [x, f"{y}\n\n{z}"]
    assert split_text("😀" * 3000, ahead=11)[0] == "😀" * 2042  # 4,084 units; 2,043 is 4,097


def test_a_quote_is_the_stripped_words_cut_between_words_with_an_ellipsis() -> None:
    assert blockquote(" \n ") is None
    short = blockquote("\n  Is it 👍 yet?  ")
    assert short is not None
    assert (short.words, short.lead) == ("Is it 👍 yet?", "Is it 👍 yet?\n")
    [entity] = short.entities
    assert (entity.type, entity.offset, entity.length) == ("blockquote", 0, 13)  # 👍 counts 2
    long = blockquote("word " * 100)
    assert long is not None
    assert long.words == ("word " * 40).rstrip() + "…"
    unbroken = blockquote("😀" * 300)
    assert unbroken is not None
    assert unbroken.words == "😀" * QUOTED_CHARS + "…"
    assert unbroken.entities[0].length == 2 * QUOTED_CHARS + 1


def test_a_photo_size_of_unknown_bytes_is_not_taken_over_one_known_to_fit() -> None:
    # ``file_size`` is optional: counted as 0, the largest (over the cap) was taken.
    update = load_fixture("photo_with_caption")
    del update["message"]["photo"][-1]["file_size"]
    message = parse_update(update, max_bytes=10_000)
    assert isinstance(message, InboundMessage)
    assert message.attachments[0].ref == "telegram-file:photo-small"
    # None known to fit: the largest of unknown size (the download checks it).
    message = parse_update(update, max_bytes=1000)
    assert isinstance(message, InboundMessage)
    assert message.attachments[0].ref == "telegram-file:photo-big"
