"""The one explicit mapping from a channel to its outbound sender.

Each channel's issue adds its entry here; a channel without one has its deliveries parked as
failed with the reason, visible to admins, rather than retried forever.
"""

from __future__ import annotations

from collections.abc import Callable

from channels.base import OutboundSender
from gateway.models import Channel
from gateway.settings import Settings

SenderFactory = Callable[[Settings], OutboundSender]

SENDERS: dict[Channel, SenderFactory] = {}
