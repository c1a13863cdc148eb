"""``gateway inbound replay ID``: a parked input fed in again through its channel, once the cause
it failed for is fixed, and taken off the list when that succeeds.

Zammad's operators re-process the mails it could not (``process_unprocessable_mails``); ours
had to post a parked Telegram update to the webhook with its secret header, or append a mail
to the mailbox, by hand. Replaying runs the input through the same step the webhook, the
poller and the mailbox listener use (:class:`TelegramInbound`, :class:`MailProcessor`), on
this process's own pipeline (:mod:`gateway.assembly`): it is stored, answered from the
knowledge base or escalated as it would have been, and what it sends out goes into the outbox
for the running gateway's relay. Replaying twice, or an input the gateway has stored since,
stores nothing new: both steps deduplicate as for any redelivery.

An input that fails again stays parked, with the error printed; so does one its channel
refuses (the reason printed: a mail the parser cannot read, an update from a group), and a
mail whose bytes were never kept (the server would not hand them over: it is still in the
mailbox, unread). ``gateway inbound drop ID`` takes such an input off the list.

The running gateway feeds inputs parked for statement timeouts in by itself, through the same
:func:`feed` on its own pipeline and bot (:mod:`gateway.replay_sweep`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from telegram import Bot

from channels.base import ChannelInputError
from channels.email.process import MailProcessor
from channels.telegram.bot import open_bot
from channels.telegram.inbound import TelegramInbound
from gateway.assembly import build_pipeline, close_kb, stored_kb
from gateway.inbound_admin import drop_parked
from gateway.metrics import Metrics
from gateway.models import Channel
from gateway.pipeline import Pipeline
from gateway.settings import Settings
from gateway.store import Store
from gateway.store.tables import ParkedInbound
from knowledge_base.base import KnowledgeBase

REPLAYABLE = (Channel.TELEGRAM.value, Channel.EMAIL.value)
"""The channels whose parked input can be fed in again."""


class NotReplayed(Exception):
    """The input was not fed in again; it stays parked. The message says why."""


@dataclass(frozen=True, slots=True)
class Replayed:
    """What feeding the input in again did (it is no longer parked)."""

    channel: str
    outcome: str  # "handled" for an update; a mail's outcome: stored, duplicate, bounce, dropped


async def replay(settings: Settings, store: Store, parked_id: int) -> Replayed:
    """Feed parked input ``parked_id`` in again and drop it from the list once that is
    committed (routing included); raises :class:`NotReplayed` otherwise."""
    channel, raw = await parked_input(store, parked_id)
    metrics = Metrics()
    kb: KnowledgeBase | None = None
    try:
        if channel == Channel.TELEGRAM.value:
            # An update the bot cannot take is refused before the matcher is built (seconds).
            _decoded(settings, raw)
        kb = await stored_kb(store)
        pipeline = build_pipeline(settings, store, kb, metrics=metrics)
        async with contextlib.AsyncExitStack() as stack:
            bot = None
            if channel == Channel.TELEGRAM.value:
                bot = await stack.enter_async_context(
                    open_bot(settings.telegram, redis_url=settings.redis_url)
                )
            outcome = await feed(
                channel, raw, settings=settings, store=store, pipeline=pipeline, bot=bot
            )
        # Routed too before it leaves the list: an answer or an escalation is part of it.
        await pipeline.drain()
    except NotReplayed as exc:
        raise NotReplayed(f"{exc} (parked input {parked_id} stays parked)") from exc
    finally:
        if kb is not None:
            await close_kb(kb)
    await drop_parked(store, parked_id)
    return Replayed(channel, outcome)


async def parked_input(store: Store, parked_id: int) -> tuple[str, bytes]:
    """The channel and bytes of parked input ``parked_id``, if it can be fed in again;
    raises :class:`NotReplayed` otherwise."""
    async with store.read() as session:
        row = await session.execute(
            select(ParkedInbound.channel, ParkedInbound.raw).where(ParkedInbound.id == parked_id)
        )
        found = row.one_or_none()
    if found is None:
        raise NotReplayed(f"no parked input {parked_id}")
    channel, raw = found
    if not raw:
        raise NotReplayed(
            f"parked input {parked_id} has no bytes kept (the server would not hand them over; "
            "the mail is still in the mailbox, unread)"
        )
    if channel not in REPLAYABLE:
        raise NotReplayed(f"parked input {parked_id} is of channel {channel!r}: not replayable")
    return channel, raw


async def feed(
    channel: str,
    raw: bytes,
    *,
    settings: Settings,
    store: Store,
    pipeline: Pipeline,
    bot: Bot | None,
) -> str:
    """Run a parked input's bytes through its channel's own step on ``pipeline``, which
    returns once it is committed (its routing runs on in the pipeline); the outcome.

    The one step both ``gateway inbound replay`` (a pipeline and bot of its own) and the
    running gateway's sweep (:mod:`gateway.replay_sweep`, the app's) take. Raises
    :class:`NotReplayed` if the input failed again (the failure is its ``__cause__``) or its
    channel refuses it; ``bot`` is the Telegram bot an update is handled with (None: none
    configured, and an update is not replayed).
    """
    if channel == Channel.TELEGRAM.value:
        update = _decoded(settings, raw)
        if bot is None:
            raise NotReplayed("the Telegram channel is not running here: an update needs the bot")
        return await _update(settings, store, pipeline, bot, update)
    if channel == Channel.EMAIL.value:
        return await _mail(settings, store, pipeline, raw)
    raise NotReplayed(f"channel {channel!r} is not replayable")


def _decoded(settings: Settings, raw: bytes) -> dict[str, Any]:
    """The parked update, if the settings have a bot to handle it with."""
    if settings.telegram.token is None:
        raise NotReplayed("GATEWAY_TELEGRAM__TOKEN is not set: a Telegram update needs the bot")
    try:
        update = json.loads(raw)
    except ValueError:
        raise NotReplayed("the parked update is not JSON") from None
    if not isinstance(update, dict):
        raise NotReplayed("the parked update is not a JSON object")
    return update


async def _update(
    settings: Settings, store: Store, pipeline: Pipeline, bot: Bot, update: dict[str, Any]
) -> str:
    config = settings.telegram
    # Metrics of its own: a refusal is told by what they count (the app's count everyone's).
    metrics = Metrics()
    inbound = TelegramInbound(
        pipeline=pipeline,
        store=store,
        router=pipeline.router,
        metrics=metrics,
        bot=bot,
        settings=config,
        clock=pipeline.ingest.clock,
    )
    try:
        await inbound.handle(update)
    except Exception as exc:
        said = str(exc)
        if config.token is not None:  # PTB's or httpx's error may quote a Bot API URL
            said = said.replace(config.token.get_secret_value(), "<token>")
        raise NotReplayed(f"the update failed again: {type(exc).__name__}: {said}") from exc
    # ``handle`` refuses an update it cannot use (counted, as the webhook's are) without
    # raising: its bytes stay parked, for whoever fixes the parser, rather than go unseen.
    refused = _refusals(metrics)
    if refused:
        raise NotReplayed(f"the update is refused: {', '.join(refused)}")
    return "handled"


def _refusals(metrics: Metrics) -> list[str]:
    """The reasons ``metrics`` counted inbound refusals for (none: the input was taken)."""
    return [
        sample.labels["reason"]
        for family in metrics.rejected.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.value > 0
    ]


async def _mail(settings: Settings, store: Store, pipeline: Pipeline, raw: bytes) -> str:
    if settings.secret_key is None:  # the processor checks the ids we signed with it
        raise NotReplayed("GATEWAY_SECRET_KEY is not set: a mail needs it")
    processor = MailProcessor(settings, store, pipeline.on_message, parse_workers=0)
    try:
        outcome = await processor.process(raw)
    except ChannelInputError as exc:
        raise NotReplayed(f"the mail is refused: {exc.reason}: {exc.detail}") from exc
    except Exception as exc:
        raise NotReplayed(f"the mail failed again: {type(exc).__name__}: {exc}") from exc
    finally:
        processor.close()
    return outcome.value
