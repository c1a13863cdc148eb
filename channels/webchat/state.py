"""What the web chat keeps in the application, under one typed key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from channels.webchat.conversation import Conversation, Services
from channels.webchat.hub import Hub
from channels.webchat.ratelimit import RateLimiter
from channels.webchat.tokens import SessionClaims
from gateway.settings import WebchatSettings


@dataclass(frozen=True, slots=True)
class WebchatState:
    """The channel's resources, set when the application starts."""

    settings: WebchatSettings
    secret: str
    services: Services
    hub: Hub
    messages: RateLimiter
    """Frames per chat session (burst 20, 5 per second by default)."""
    sessions: RateLimiter
    """New sessions per client IP address."""
    uploads: RateLimiter
    """Files per chat session (burst 10, 6 a minute by default): each may be megabytes."""
    sockets: set[web.WebSocketResponse] = field(default_factory=set)
    """Open sockets, closed with 1001 at shutdown."""

    def conversation(self, claims: SessionClaims) -> Conversation:
        return Conversation(claims, self.services, files=Path(self.settings.attachment_dir))


WEBCHAT = web.AppKey("webchat", WebchatState)
