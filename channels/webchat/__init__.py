"""The web chat channel: an embeddable widget, its WebSocket, and an HTTP long-poll fallback.

- ``tokens.py``: signed session tokens; ``sessions.py``: opening a session.
- ``frames.py``: the wire format; ``conversation.py``: what a session may do with the store.
- ``socket.py``: the WebSocket; ``http.py``: sessions, fallback, widget and demo routes.
- ``files.py``: the files a message names; ``file_routes.py``: the customer's uploads.
- ``hub.py``: Redis pub/sub fan-out between gateway processes; ``sender.py``: the outbound side.
- ``ratelimit.py``: token buckets; ``security.py``: origins, CORS, tokens on requests.
- ``static/``: ``widget.js``, ``widget.css``, ``demo.html``.
"""

from __future__ import annotations

from channels.webchat.mount import mount
from channels.webchat.sender import WebchatSender

__all__ = ["WebchatSender", "mount"]
