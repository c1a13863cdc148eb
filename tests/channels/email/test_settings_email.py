"""The email settings refuse what would leak passwords or break threading."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.settings import EmailSettings, MailSecurity


def test_plain_connections_only_on_loopback() -> None:
    assert EmailSettings(imap_security=MailSecurity.PLAIN, imap_host="127.0.0.1").imap_port == 993
    with pytest.raises(ValidationError, match="GATEWAY_EMAIL__SMTP_SECURITY=plain"):
        EmailSettings(smtp_security=MailSecurity.PLAIN, smtp_host="mail.example.com")


def test_enabled_needs_credentials_and_defaults_are_safe() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_EMAIL__ADDRESS"):
        EmailSettings(enabled=True)
    settings = EmailSettings(address="Support@Example.COM")
    assert settings.imap_security is MailSecurity.TLS
    assert settings.smtp_security is MailSecurity.STARTTLS
    assert settings.domain == "example.com"
    assert settings.auto_reply_cap == 10 and settings.auto_reply_window_minutes == 180
    assert settings.attachment_max_bytes == 10 * 1024 * 1024
    assert "secret" not in repr(EmailSettings(imap_password="secret"))
