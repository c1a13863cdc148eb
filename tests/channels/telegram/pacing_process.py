"""One process's share of a blast, for the shared pacing tests.

``python -m tests.channels.telegram.pacing_process COUNT FIRST_CHAT``: settings from
``GATEWAY_*`` as a deployed worker's are; it keeps a ``TelegramSender`` open as ``gateway
worker`` does, prints ``ready``, waits for a line on stdin (so that every process starts
sending at once), sends COUNT notices at once to chats FIRST_CHAT, FIRST_CHAT + 1, ... and
exits 0 once all went.
"""

from __future__ import annotations

import asyncio
import sys

from channels.telegram.sender import TelegramSender
from gateway.models import Channel, OutboundMessage
from gateway.settings import Settings


async def main(count: int, first_chat: int) -> None:
    sender = TelegramSender(Settings())
    await sender.open()
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await asyncio.gather(
            *(
                sender.send(
                    OutboundMessage(
                        outbox_id=first_chat + n,
                        channel=Channel.TELEGRAM,
                        recipient=str(first_chat + n),
                        text=f"Your ticket G20261122{n:03d} is being handled.",
                    )
                )
                for n in range(count)
            )
        )
    finally:
        await sender.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
