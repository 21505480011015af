"""One redaction for secrets in text: every log line (a filter on the root handlers, set by
``setup_logging``), every error the notifier stores, and what ``moodwire notify history`` prints.

Two kinds of secret are masked (OWASP ASVS 4.0 V7.1.1: no credentials in logs):
- the values the configuration holds, registered when it is loaded (``secrets.add``): a
  receiver URL's path and query (a Slack or Teams webhook's path *is* its token), its header
  values, an SMTP password, an apprise URL whole;
- what looks like a credential in any text: a URL's user:password@, the value of a query
  parameter named like a token (token, key, secret, password, sig, …), and an Authorization
  or API-key header's value.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit

MASK = "***"
_QUERY = re.compile(r"(?i)([?&;](?:[a-z0-9_.-]*(?:token|key|secret|passw(?:or)?d|pwd|sig|signature|auth|"
                    r"credential|session)[a-z0-9_.-]*)=)[^&\s'\"#<>]+")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@'\"]+@")
_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization|x-api-key|api-key|x-auth-token)(['\"]?\s*[:=]\s*['\"]?)"
                     r"(?:(?:bearer|basic|token)\s+)?[^\s'\",}]+")


class Secrets:
    """The configured secret values (longest first, so a URL is masked before a part of it)."""

    def __init__(self) -> None:
        self._values: list[str] = []
        self._lock = threading.Lock()

    def add(self, *values: str | None) -> None:
        with self._lock:
            fresh = {v for v in values if v and len(v) >= 4} - set(self._values)
            if fresh:
                self._values = sorted([*self._values, *fresh], key=len, reverse=True)

    def add_url(self, url: str, whole: bool = False) -> None:
        """A receiver URL: its path, query and user info are secret; the scheme and host are
        kept to say where a delivery went. ``whole``: every part after the scheme (apprise)."""
        parts = urlsplit(url)
        if whole:
            self.add(url.split("://", 1)[-1])
            return
        rest = url[len(f"{parts.scheme}://{parts.netloc}"):]
        if rest.strip("/"):
            self.add(rest)
            self.add(parts.path if parts.path.strip("/") else None, parts.query or None)
        if parts.password:
            self.add(parts.password)

    def __call__(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "/" + MASK if value.startswith("/") else MASK)
        return text


secrets = Secrets()


def redact(text: object) -> str | None:
    """``text`` with every secret masked (None stays None)."""
    if text is None:
        return None
    out = secrets(str(text))
    out = _USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", out)
    out = _QUERY.sub(lambda m: f"{m.group(1)}{MASK}", out)
    return _HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)


class RedactingFilter(logging.Filter):
    """Masks secrets in a record's message and traceback before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs() -> None:
    """A ``RedactingFilter`` on every handler of the root logger (it sees every logger's records)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


__all__ = ["redact", "secrets", "Secrets", "RedactingFilter", "redact_logs", "MASK"]
