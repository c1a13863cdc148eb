"""Property: any bytes, generated or mutated from real mail, give a result or ChannelInputError."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.base import ChannelInputError
from channels.email.ids import Signer
from channels.email.parse import ParsedMail, Rejected, parse_mail
from tests.channels.email.corpus import mails, raw

SIGNER = Signer("property-secret", "example.test")
CORPUS = [raw(m["file"]) for m in mails()]

_HEADER_NAMES = st.sampled_from(
    [
        "From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Date",
        "Content-Type", "Content-Transfer-Encoding", "Content-Disposition", "Auto-Submitted",
        "Return-Path", "List-Id", "MIME-Version", "Precedence", "Reply-To",
    ]
)  # fmt: skip
_VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "multipart/mixed; boundary=x",
            'multipart/alternative; boundary="b"',
            "text/plain; charset=gb2312",
            "text/html; charset=x-unknown",
            "message/rfc822",
            "multipart/report; report-type=delivery-status",
            "base64",
            "quoted-printable",
            "=?gb2312?B?xOO6ww==?=",
            "=?utf-8?q?broken",
            "<a@b> <c@d",
            "attachment; filename*=gbk''%C4%E3",
            "<>",
        ]
    ),
)


def _check(data: bytes) -> None:
    try:
        result = parse_mail(data, our_addresses=["support@example.test"], signer=SIGNER)
    except ChannelInputError:
        return
    assert isinstance(result, ParsedMail | Rejected)
    if isinstance(result, ParsedMail):
        result.inbound(ticket_ref=None)  # the model validates too


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    headers=st.lists(st.tuples(_HEADER_NAMES, _VALUES), max_size=12),
    body=st.binary(max_size=400),
)
def test_generated_mail(headers: list[tuple[str, str]], body: bytes) -> None:
    head = "".join(f"{name}: {value}\r\n" for name, value in headers)
    _check(head.encode("utf-8", "surrogateescape") + b"\r\n" + body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    index=st.integers(min_value=0, max_value=len(CORPUS) - 1),
    edits=st.lists(
        st.tuples(st.floats(min_value=0, max_value=1), st.binary(max_size=8), st.integers(0, 16)),
        max_size=6,
    ),
)
def test_mutated_corpus_mail(index: int, edits: list[tuple[float, bytes, int]]) -> None:
    data = bytearray(CORPUS[index])
    for where, insert, cut in edits:
        at = int(where * len(data))
        data[at : at + cut] = insert
    _check(bytes(data))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_any_bytes(data: bytes) -> None:
    _check(data)
