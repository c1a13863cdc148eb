"""The bot's rate shared by every process through Redis (``channels/telegram/pacing.py``).

Times are the fake Bot API's arrival stamps, on the test process's monotonic clock. Each rate
is checked from both sides the machine cannot fake: no window holds more sends than the limit
(give or take :data:`JITTER`: a send's way from its moment to the fake varies), and the whole
run takes at least the time the shared rate implies (a lower bound holds on a slow machine;
an upper one would not).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from telegram.error import RetryAfter
from telegram.ext import AIORateLimiter, ExtBot

from channels.telegram.bot import open_bot, retry_seconds
from channels.telegram.pacing import SharedRateLimiter, bot_limiter
from gateway.settings import Settings
from tests.channels.telegram.conftest import TOKEN, WEBHOOK_SECRET
from tests.channels.telegram.fake_bot_api import FakeBotAPI
from tests.cli_runner import environment
from tests.conftest import RedisServer, free_port, make_settings

JITTER = 0.25
"""Seconds a window's sends may seem closer together than their moments were: the first
requests of a run also open their connections, and a loaded machine is late to wake a sleeper.
Without sharing, a window of two processes held twice the limit within a few milliseconds."""

ROOT = Path(__file__).resolve().parents[3]
BOT_ID = TOKEN.split(":", 1)[0]
GROUP = -1001234567890
LOGGER = "channels.telegram.pacing"


def pacing_settings(fake: FakeBotAPI, redis_url: str, tmp_path: Path, **telegram: Any) -> Settings:
    """Settings for a bot against ``fake``; no database (a one-part send reads none)."""
    section: dict[str, Any] = {
        "enabled": True,
        "token": TOKEN,
        "webhook_secret": WEBHOOK_SECRET,
        "base_url": f"http://127.0.0.1:{fake.port}",
        **telegram,
    }
    return make_settings(
        telegram=section,
        redis_url=redis_url,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        outbox_relay=False,
    )


def ext_bot(fake: FakeBotAPI, limiter: SharedRateLimiter) -> ExtBot[int]:
    return ExtBot(TOKEN, base_url=f"http://127.0.0.1:{fake.port}/bot", rate_limiter=limiter)


def arrivals(fake: FakeBotAPI, chat: int | None = None) -> list[float]:
    return sorted(
        call.at
        for call in fake.calls_of("sendMessage")
        if chat is None or int(call.params["chat_id"]) == chat
    )


def closest_window(times: list[float], limit: int) -> float:
    """The shortest span of ``limit + 1`` consecutive sends: under the window, one window held
    more than ``limit``."""
    return min(times[i + limit] - times[i] for i in range(len(times) - limit))


def pacing_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_two_worker_processes_keep_to_one_rate_together(
    fake: FakeBotAPI, redis_url: str, redis_client: aioredis.Redis, tmp_path: Path
) -> None:
    """The bug: each ``gateway worker`` paced only itself, so two of them sent twice the
    bot's rate and Telegram answered 429. Two real processes, 20 notices each at once, at
    10 a second for the bot: never more than 10 in a second, so 40 take at least 3 s (10 at
    once, then 10 more as each second's leave its window)."""
    settings = {
        "GATEWAY_TELEGRAM__ENABLED": "true",
        "GATEWAY_TELEGRAM__TOKEN": TOKEN,
        "GATEWAY_TELEGRAM__WEBHOOK_SECRET": WEBHOOK_SECRET,
        "GATEWAY_TELEGRAM__BASE_URL": f"http://127.0.0.1:{fake.port}",
        "GATEWAY_TELEGRAM__RATE_PER_SECOND": "10",
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}",
        "GATEWAY_LOG_LEVEL": "WARNING",
    }
    logs = [(tmp_path / f"process-{n}.log").open("wb") for n in range(2)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.channels.telegram.pacing_process",
            "20",
            str(first_chat),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env=environment(**settings),
            cwd=ROOT,
        )
        for first_chat, log in zip((1000, 2000), logs, strict=True)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            assert await asyncio.wait_for(process.stdout.readline(), 30) == b"ready\n"
        started = time.monotonic()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write(b"go\n")
            await process.stdin.drain()
        codes = [await asyncio.wait_for(process.wait(), 20) for process in processes]
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for log in logs:
            log.close()
    said = [(tmp_path / f"process-{n}.log").read_text() for n in range(2)]
    assert codes == [0, 0], said
    assert sorted(int(s["chat_id"]) for s in fake.sent) == [
        *range(1000, 1020),
        *range(2000, 2020),
    ]
    times = arrivals(fake)
    assert closest_window(times, 10) >= 1.0 - JITTER
    assert times[-1] - started >= 2.95
    # The budget is the bot's, named by its id: never by the token, which is a secret. (It
    # may have expired already: a second after the last send.)
    keys = {key.decode() async for key in redis_client.scan_iter("*")}
    assert keys <= {f"gw:telegram:pace:{BOT_ID}"}
    assert all(TOKEN not in text and "TEST-token" not in text for text in said)


async def test_a_groups_twenty_a_minute_are_shared_too(
    fake: FakeBotAPI, redis_url: str, redis_client: aioredis.Redis
) -> None:
    """Two bots (two processes' worth) writing to one group keep to the group's limit
    together, scaled down here to 3 a second: 8 messages take at least 2 s, while messages to
    private chats pass beside them at the bot's rate."""

    def limiter() -> SharedRateLimiter:
        return SharedRateLimiter(
            redis_url,
            bot_id=BOT_ID,
            overall_max_rate=100,
            group_max_rate=3,
            group_time_period=1.0,
        )

    first, second = ext_bot(fake, limiter()), ext_bot(fake, limiter())
    async with first, second:
        started = time.monotonic()
        await asyncio.gather(
            *(bot.send_message(GROUP, f"group {n}") for bot in (first, second) for n in range(4)),
            *(first.send_message(3000 + n, f"private {n}") for n in range(3)),
        )
    group = arrivals(fake, GROUP)
    assert len(group) == 8
    assert closest_window(group, 3) >= 1.0 - JITTER
    assert group[-1] - started >= 1.95
    private = [c.at for c in fake.calls_of("sendMessage") if int(c.params["chat_id"]) > 0]
    assert len(private) == 3
    assert max(private) - started < 1.0  # not held back by the group's limit
    # Named by the bot's id, never by its token (a secret); the group's beside the bot's.
    keys = sorted([key.decode() async for key in redis_client.scan_iter("*")])
    assert keys == [f"gw:telegram:pace:{BOT_ID}", f"gw:telegram:pace:{BOT_ID}:chat:{GROUP}"]


async def test_with_redis_away_a_process_paces_itself_and_says_so_once(
    fake: FakeBotAPI, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis not answering (nothing listens on its port) loses and blocks no send: each
    process keeps to the rate alone, 10 at once then 10 a second, and one warning says so."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    settings = pacing_settings(
        fake, f"redis://127.0.0.1:{free_port()}/0", tmp_path, rate_per_second=10
    )
    async with open_bot(settings.telegram, redis_url=settings.redis_url) as bot:
        assert isinstance(bot, ExtBot)
        assert isinstance(bot.rate_limiter, SharedRateLimiter)
        started = time.monotonic()
        await asyncio.gather(*(bot.send_message(1000 + n, f"notice {n}") for n in range(20)))
    times = arrivals(fake)
    assert len(times) == 20
    assert times[-1] - started >= 0.9
    [warning] = pacing_warnings(caplog)
    assert "Redis unreachable" in warning.getMessage()
    assert "TEST-token" not in caplog.text


async def test_pacing_is_shared_again_once_redis_is_back(
    fake: FakeBotAPI,
    redis_url: str,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    limiter = SharedRateLimiter(redis_url, bot_id=BOT_ID, overall_max_rate=10, recheck_after=0.2)
    async with ext_bot(fake, limiter) as bot:
        redis_server.stop()
        try:
            for n in range(3):
                await bot.send_message(1000 + n, "during the outage")
        finally:
            redis_server.start()
        await asyncio.sleep(0.3)
        for n in range(2):
            await bot.send_message(2000 + n, "after it")
    assert len(fake.sent) == 5
    assert len(pacing_warnings(caplog)) == 1
    assert await redis_client.zcard(f"gw:telegram:pace:{BOT_ID}") == 2
    assert any(r.name == LOGGER and "again" in r.getMessage() for r in caplog.records), caplog.text


async def test_a_moment_too_far_off_is_a_retry_after_not_a_long_wait(
    fake: FakeBotAPI, redis_url: str
) -> None:
    """Waits are bounded: a send whose moment is further off than ``max_wait`` raises
    ``RetryAfter`` at once, as Telegram's 429 would, and reserves nothing."""
    limiter = SharedRateLimiter(redis_url, bot_id=BOT_ID, overall_max_rate=1, max_wait=0.3)
    async with ext_bot(fake, limiter) as bot:
        started = time.monotonic()
        outcomes = await asyncio.gather(
            bot.send_message(1000, "first"),
            bot.send_message(1001, "second"),
            return_exceptions=True,
        )
        assert time.monotonic() - started < 0.9
        [refused] = [o for o in outcomes if isinstance(o, RetryAfter)]
        assert retry_seconds(refused) == 1
        assert len(fake.calls_of("sendMessage")) == 1
        # Nothing was reserved for it: a second later, one send has its moment at once.
        await asyncio.sleep(1.0)
        await bot.send_message(1002, "third")
    assert len(fake.sent) == 2


async def test_telegrams_retry_after_reaches_the_sender_untried_again(
    fake: FakeBotAPI, redis_url: str
) -> None:
    """The limiter does not retry (the sender decides: ``sender.py``)."""
    fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    async with ext_bot(fake, SharedRateLimiter(redis_url, bot_id=BOT_ID)) as bot:
        with pytest.raises(RetryAfter) as refused:
            await bot.send_message(1000, "notice")
    assert retry_seconds(refused.value) == 3
    assert len(fake.calls_of("sendMessage")) == 1


def test_which_limiter_a_bot_gets(fake: FakeBotAPI, tmp_path: Path) -> None:
    redis_url = "redis://127.0.0.1:6379/0"
    shared = bot_limiter(pacing_settings(fake, redis_url, tmp_path).telegram, redis_url=redis_url)
    assert isinstance(shared, SharedRateLimiter)
    assert shared.bot_id == BOT_ID
    alone = pacing_settings(fake, redis_url, tmp_path, rate_shared=False).telegram
    assert isinstance(bot_limiter(alone, redis_url=redis_url), AIORateLimiter)
    off = pacing_settings(fake, redis_url, tmp_path, rate_per_second=0).telegram
    assert bot_limiter(off, redis_url=redis_url) is None


async def test_a_rate_under_one_a_second_paces_rather_than_fails(
    fake: FakeBotAPI, tmp_path: Path
) -> None:
    """The bug: at a rate under 1 (``RATE_PER_SECOND=0.5``) python-telegram-bot's limiter
    refused every send ("Can't acquire more than the maximum capacity"). Paced alone (Redis
    away), one a second is now one per 2 s."""
    settings = pacing_settings(
        fake, f"redis://127.0.0.1:{free_port()}/0", tmp_path, rate_per_second=0.5
    )
    async with open_bot(settings.telegram, redis_url=settings.redis_url) as bot:
        await bot.send_message(1000, "notice")
    assert len(fake.sent) == 1
