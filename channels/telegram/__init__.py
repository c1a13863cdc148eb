"""The Telegram channel: customers write to the shop's bot; answers come back in the same chat.

python-telegram-bot's ``Bot`` is held as a collaborator, never subclassed. Inbound, updates
arrive by webhook (``webhook.py``) or long polling (``polling.py``) and go through one step
(``inbound.py``): the pure ``parse_update`` (``parse.py``), then ingest, a command
(``commands.py``), an edit, or a button press (``callbacks.py``). Outbound, ``TelegramSender``
(``sender.py``, the messages of each made by ``delivery_parts.py``) delivers outbox rows.
``mount`` adds it all to the web application.
"""

from __future__ import annotations

from channels.telegram.mount import mount
from channels.telegram.parse import Ignored, parse_update
from channels.telegram.sender import TelegramSender

__all__ = ["Ignored", "TelegramSender", "mount", "parse_update"]
