from __future__ import annotations

import pytest

from knowledge_base.text_features import features, normalize_text, stem, words


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "abc123"),  # full-width letters and digits fold to ASCII
        ("退货？！", "退货"),  # full-width punctuation becomes a separator
        ("Where is my ORDER?? 😀😀", "where is my order"),  # emoji and case
        ("iPhone退货，怎么办", "iphone退货 怎么办"),
        ("  \t\n ", ""),
        ("👍", ""),
    ],
)
def test_normalize_text(raw: str, expected: str) -> None:
    assert normalize_text(raw) == expected


def test_words_split_mixed_chinese_and_english() -> None:
    assert words("我的iPhone还没发货") == ["我", "的", "iphone", "还", "没", "发货"]


def test_words_stem_english_plurals_and_endings() -> None:
    assert words("Refunds shipped boxes") == ["refund", "shipp", "boxe"]
    assert stem("delivery") == "delivery"
    assert stem("deliveries") == "delivery"
    assert stem("address") == "address"


def test_full_width_and_half_width_give_the_same_features() -> None:
    assert features("ＲＥＦＵＮＤ　退款") == features("refund 退款")


def test_chinese_features_include_character_bigrams() -> None:
    feats = features("退款多久")
    assert {"c:退", "c:退款", "c:款多", "c:多久"} <= set(feats)
    assert any(f.startswith("w:") for f in feats)


def test_english_features_include_trigrams_for_typos() -> None:
    # A typo keeps most trigrams, so the lexical index still sees an overlap.
    right = {f for f in features("password") if f.startswith("g:")}
    typo = {f for f in features("pasword") if f.startswith("g:")}
    assert len(right & typo) >= 3


def test_emoji_only_text_has_no_features() -> None:
    assert features("🙂🙂🙂") == []
