"""The one explicit mapping of each channel to its parts.

- ``SENDERS``: how a worker delivers an :class:`OutboundMessage` on the channel.
- ``MOUNTS``: how the web application gains the channel's routes and background listeners
  (``mount(app, settings)`` adds a route table or sub-app and ``cleanup_ctx`` generators; the
  pipeline is ``app[PIPELINE]`` once the application has started).

A channel appears here once its adapter exists; one without a sender has its deliveries parked as
failed with the reason, visible to admins, rather than retried forever. The application mounts a
channel only when its settings section says ``enabled``.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from channels.base import OutboundSender
from channels.email.mount import mount as mount_email
from channels.email.sender import EmailSender
from channels.telegram import TelegramSender
from channels.telegram import mount as mount_telegram
from channels.webchat import WebchatSender
from channels.webchat import mount as mount_webchat
from gateway.models import Channel
from gateway.settings import Settings

SenderFactory = Callable[[Settings], OutboundSender]
Mount = Callable[[web.Application, Settings], None]

SENDERS: dict[Channel, SenderFactory] = {
    Channel.EMAIL: EmailSender,
    Channel.WEBCHAT: WebchatSender,
    Channel.TELEGRAM: TelegramSender,
}

MOUNTS: dict[Channel, Mount] = {
    Channel.EMAIL: mount_email,
    Channel.WEBCHAT: mount_webchat,
    Channel.TELEGRAM: mount_telegram,
}


def enabled(settings: Settings, channel: Channel) -> bool:
    """Whether the settings switch ``channel`` on (``GATEWAY_<CHANNEL>__ENABLED``)."""
    section = getattr(settings, channel.value)
    return bool(section.enabled)
