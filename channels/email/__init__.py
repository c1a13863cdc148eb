"""The email channel: IMAP IDLE listener in, SMTP sender out, MIME parsing and threading.

- :mod:`.parse` (pure): raw bytes -> :class:`ParsedMail` or :class:`Rejected`.
- :mod:`.references`: which ticket a reply belongs to (signed ids, stored ids, subject tag).
- :mod:`.listener`: IMAP IDLE, UID cursor, ``\\Seen`` after commit, parking.
- :mod:`.sender`: ``SENDERS[Channel.EMAIL]`` over aiosmtplib.
"""

from __future__ import annotations
