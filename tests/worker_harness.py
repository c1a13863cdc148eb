"""A worker process for tests: an RQ worker whose Telegram sender writes what it sends to a file.

Run as ``python -m tests.worker_harness RECORD_FILE [--forking] [--fail MESSAGE]``; settings come
from the environment like a real worker's. The Telegram adapter is its own issue; until then this
stands in for it so the relay -> queue -> job -> channel path runs for real across processes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import redis
from rq import Queue, SimpleWorker, Worker

from channels.base import ChannelError
from channels.registry import SENDERS
from gateway.models import Channel, DeliveryReceipt, OutboundMessage
from gateway.outbox import QUEUES
from gateway.settings import Settings
from workers.sla_sweep import QUEUE as SLA_QUEUE


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("record", type=Path)
    parser.add_argument("--forking", action="store_true")
    parser.add_argument("--fail")
    parser.add_argument(
        "--no-sender",
        action="append",
        default=[],
        metavar="CHANNEL",
        help="unregister this channel's sender (a channel not set up)",
    )
    args = parser.parse_args()

    class FileSender:
        def __init__(self, settings: Settings) -> None:
            self.settings = settings

        async def send(self, msg: OutboundMessage) -> DeliveryReceipt:
            if args.fail:
                raise ChannelError(args.fail)
            with args.record.open("a", encoding="utf-8") as out:
                out.write(msg.model_dump_json() + "\n")
            return DeliveryReceipt(external_id=f"sent-{msg.outbox_id}")

    SENDERS[Channel.TELEGRAM] = FileSender
    for channel in args.no_sender:
        SENDERS.pop(Channel(channel), None)
    settings = Settings()
    connection = redis.Redis.from_url(settings.redis_url)
    queues = [Queue(name, connection=connection) for name in (SLA_QUEUE, *QUEUES)]
    worker_class = Worker if args.forking else SimpleWorker
    worker_class(queues, connection=connection).work(burst=True)


def read_record(path: Path) -> list[OutboundMessage]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [OutboundMessage.model_validate(json.loads(line)) for line in lines]


if __name__ == "__main__":
    main()
