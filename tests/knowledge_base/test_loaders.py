from __future__ import annotations

import json
from pathlib import Path

import pytest

from knowledge_base.entry import KBEntry
from knowledge_base.loaders import KBFormatError, load_entries

DEMO = Path(__file__).parents[2] / "knowledge_base" / "demo" / "demo_kb.yaml"


def test_yaml_with_entries_key_and_locale_answers(tmp_path: Path) -> None:
    path = tmp_path / "kb.yaml"
    path.write_text(
        "entries:\n"
        "  - id: refund\n"
        "    title: 退款多久到账？\n"
        "    category: returns\n"
        "    examples: [退款什么时候到, 'When will I get my refund?']\n"
        "    answer:\n"
        "      zh-CN: 1至5个工作日。\n"
        "      en: 1-5 business days.\n",
        encoding="utf-8",
    )
    (entry,) = load_entries(path)
    assert entry == KBEntry(
        id="refund",
        title="退款多久到账？",
        examples=("退款什么时候到", "When will I get my refund?"),
        answers={"zh-CN": "1至5个工作日。", "en": "1-5 business days."},
        category="returns",
    )
    assert entry.phrasings == ("退款多久到账？", "退款什么时候到", "When will I get my refund?")


def test_jsonl_plain_answer_goes_to_default_locale(tmp_path: Path) -> None:
    path = tmp_path / "kb.jsonl"
    lines = [
        {"id": "a", "title": "Where is my order", "examples": ["track order"], "answer": "A"},
        {"id": 7, "title": "Invoice", "examples": [], "answer": {"en": "B"}},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    first, second = load_entries(path, default_locale="en")
    assert first.answers == {"en": "A"}
    assert second.id == "7"
    assert second.examples == ()


def test_csv_examples_split_on_pipes_and_answer_columns(tmp_path: Path) -> None:
    path = tmp_path / "kb.csv"
    path.write_text(
        "id,title,examples,answer_zh-CN,answer_en,category\n"
        'pw,忘记密码,"密码忘了|I forgot my password| ",点击忘记密码,Use Forgot password,account\n',
        encoding="utf-8",
    )
    (entry,) = load_entries(path)
    assert entry.examples == ("密码忘了", "I forgot my password")
    assert entry.answer_for("en") == "Use Forgot password"
    assert entry.category == "account"


def test_frozen_entry_cannot_be_changed() -> None:
    entry = KBEntry(id="x", title="t", answers={"en": "a"})
    with pytest.raises(AttributeError):
        entry.title = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        entry.answers["en"] = "b"  # type: ignore[index]


def test_answer_for_picks_locale_then_language_then_fallback() -> None:
    entry = KBEntry(id="x", title="t", answers={"zh-CN": "中文", "en": "English"})
    assert entry.answer_for("en") == "English"
    assert entry.answer_for("en-GB") == "English"
    assert entry.answer_for("zh-TW") == "中文"
    assert entry.answer_for("fr") == "English"  # as the bot's own texts: English first
    assert entry.answer_for("pt-br") == "English"
    assert entry.answer_for(None) == "中文"  # no preference: the shop's language
    assert entry.answer_for("") == "中文"
    assert KBEntry(id="y", title="t", answers={"en": "only"}).answer_for("zh-CN") == "only"
    regional = KBEntry(id="z", title="t", answers={"zh-CN": "中文", "en-US": "English"})
    assert regional.answer_for("pt-BR") == "English"  # English under a regional tag too
    assert regional.answer_for(None) == "中文"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("kb.jsonl", '{"id": "a", "title": "t"}\n{"id": "a", "title": "u"}\n', "duplicate id"),
        ("kb.jsonl", '{"id": "a"}\n', "missing 'title'"),
        ("kb.jsonl", "not json\n", "invalid JSON"),
        ("kb.jsonl", '{"id": "a", "title": "t", "examples": "x"}\n', "'examples'"),
        ("kb.yaml", "just: text\n", "expected a list"),
        ("kb.txt", "", "unknown knowledge-base format"),
    ],
)
def test_malformed_files_are_rejected(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(KBFormatError, match=message):
        load_entries(path)


def test_demo_kb_is_bilingual_and_complete() -> None:
    entries = load_entries(DEMO)
    assert len(entries) >= 40
    assert len({e.id for e in entries}) == len(entries)
    for e in entries:
        assert set(e.answers) == {"zh-CN", "en"}, e.id
        assert e.category
        assert any(ch.isascii() and ch.isalpha() for x in e.examples for ch in x), e.id
        assert any("\u4e00" <= ch <= "\u9fff" for x in e.examples for ch in x), e.id
