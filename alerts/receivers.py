"""Receivers: one notification (a group's alert events) to one channel.

Each ``send`` returns on success and raises ``DeliveryError`` otherwise, saying whether a
retry can help (network errors, timeouts, HTTP 408/425/429/5xx, SMTP 4xx) or not (other
HTTP 4xx, SMTP 5xx, a refused recipient). Headlines are untrusted text: they are sent as
data (JSON), escaped for Slack's markup, and as plain-text e-mail.
"""

from __future__ import annotations

import json
import os
import smtplib
import socket
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import requests

from moodwire.errors import AlertsError
from alerts.routing import NotifyConfigError, Receiver
from moodwire.records import AlertEvent, watchlist_name
from moodwire.redact import redact, secrets

RETRYABLE_HTTP = {408, 425, 429}


class DeliveryError(AlertsError):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


def subject_of(event: AlertEvent) -> str:
    """What an alert is about, as people read it: a topic's name, or "watchlist NAME"."""
    name = watchlist_name(event.topic)
    return f"watchlist {name}" if name is not None else event.topic


def _headline(event: AlertEvent) -> str:
    verb = "FIRING" if event.status == "firing" else "RESOLVED"
    return (f"[{verb}] {event.rule} on {subject_of(event)} ({event.severity}): {event.value:+.3f} vs "
            f"{event.threshold:+.3f} over the {event.window} window" + (f" ({event.reason})" if event.reason else ""))


def subject(events: list[AlertEvent]) -> str:
    firing = sum(1 for e in events if e.status == "firing")
    resolved = len(events) - firing
    first = events[0]
    parts = [f"{firing} firing" if firing else "", f"{resolved} resolved" if resolved else ""]
    return f"Moodwire: {', '.join(p for p in parts if p)} — {first.rule} on {subject_of(first)}" + \
        (f" and {len(events) - 1} more" if len(events) > 1 else "")


def plain_text(events: list[AlertEvent]) -> str:
    lines = []
    for e in events:
        lines.append(_headline(e))
        lines.append(f"  since {e.starts_at.isoformat()}" + (f", until {e.ends_at.isoformat()}" if e.ends_at else "")
                     + f"; fingerprint {e.fingerprint}, seq {e.seq}")
        for ev in e.evidence:
            lines.append(f"  - {ev.score:+.2f} {ev.title}" + (f" <{ev.url}>" if ev.url else ""))
        lines.append("")
    return "\n".join(lines)


def payload(receiver: str, group_key: str, key: str, events: list[AlertEvent]) -> dict:
    return {"receiver": receiver, "group_key": group_key, "idempotency_key": key,
            "status": "firing" if any(e.status == "firing" for e in events) else "resolved",
            "alerts": [json.loads(e.encode()) for e in events]}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _safe_link(url: str | None) -> str | None:
    return url if url and url.startswith(("http://", "https://")) and "|" not in url and ">" not in url else None


class _Http:
    def __init__(self, url: str, timeout: timedelta, headers: dict[str, str] | None = None) -> None:
        self.url, self.timeout, self.headers = url, timeout.total_seconds(), headers or {}
        self.session = requests.Session()

    def post(self, body: dict, extra: dict[str, str]) -> None:
        try:
            response = self.session.post(self.url, json=body, headers={**self.headers, **extra}, timeout=self.timeout)
        except requests.RequestException as exc:
            raise DeliveryError(f"POST {self.url}: {type(exc).__name__}: {exc}", retryable=True) from None
        if 200 <= response.status_code < 300:
            return
        retryable = response.status_code in RETRYABLE_HTTP or response.status_code >= 500
        raise DeliveryError(f"POST {self.url}: HTTP {response.status_code} {response.text[:200]!r}", retryable)


class WebhookSender:
    """JSON with the alert events; ``Idempotency-Key`` lets the receiver drop a repeat."""

    def __init__(self, r: Receiver, timeout: timedelta) -> None:
        self.http = _Http(r.webhook.url, timeout, dict(r.webhook.headers))
        self.name = r.name

    def send(self, group_key: str, key: str, events: list[AlertEvent]) -> None:
        self.http.post(payload(self.name, group_key, key, events), {"Idempotency-Key": key})


class SlackSender:
    """Slack incoming-webhook format (also accepted by Mattermost, Rocket.Chat and others)."""

    def __init__(self, r: Receiver, timeout: timedelta) -> None:
        self.http = _Http(r.slack.url, timeout)
        self.channel = r.slack.channel

    def send(self, group_key: str, key: str, events: list[AlertEvent]) -> None:
        blocks = []
        for e in events:
            lines = [f"*{_slack_escape(_headline(e))}*"]
            for ev in e.evidence:
                title = _slack_escape(ev.title)
                link = _safe_link(ev.url)
                lines.append(f"• {ev.score:+.2f} " + (f"<{link}|{title}>" if link else title))
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}})
        body = {"text": _slack_escape(subject(events)), "blocks": blocks[:50]}
        if self.channel:
            body["channel"] = self.channel
        self.http.post(body, {"Idempotency-Key": key})


class EmailSender:
    def __init__(self, r: Receiver, timeout: timedelta, environ: dict[str, str]) -> None:
        self.cfg, self.timeout = r.email, timeout.total_seconds()
        self.password = None
        if self.cfg.password_env:
            self.password = environ.get(self.cfg.password_env)
            if self.password is None:
                raise NotifyConfigError(f"receiver {r.name!r}: email.password_env names {self.cfg.password_env}, "
                                        "which is not set in the environment")

    def send(self, group_key: str, key: str, events: list[AlertEvent]) -> None:
        msg = EmailMessage()
        msg["Subject"] = subject(events)
        msg["From"] = self.cfg.from_
        msg["To"] = ", ".join(self.cfg.to)
        msg["Message-ID"] = make_msgid(idstring=key, domain="moodwire")
        msg["X-Moodwire-Idempotency-Key"] = key
        msg.set_content(plain_text(events))
        where = f"SMTP {self.cfg.host}:{self.cfg.port}"
        try:
            cls = smtplib.SMTP_SSL if self.cfg.ssl else smtplib.SMTP
            with cls(self.cfg.host, self.cfg.port, timeout=self.timeout) as smtp:
                if self.cfg.starttls:
                    smtp.starttls()
                if self.cfg.username:
                    smtp.login(self.cfg.username, self.password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"{where}: every recipient refused: {exc.recipients}", retryable=False) from None
        except smtplib.SMTPResponseException as exc:
            retryable = 400 <= exc.smtp_code < 500
            raise DeliveryError(f"{where}: {exc.smtp_code} {exc.smtp_error!r}", retryable) from None
        except (OSError, smtplib.SMTPException, socket.timeout) as exc:
            raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}", retryable=True) from None
        if refused:
            raise DeliveryError(f"{where}: refused recipients {sorted(refused)}", retryable=False)


class AppriseSender:
    """Any channel apprise supports (Teams, Telegram, PagerDuty, Opsgenie, ...)."""

    def __init__(self, r: Receiver, timeout: timedelta) -> None:
        import apprise

        self.apprise = apprise.Apprise()
        for url in r.apprise.urls:
            if not self.apprise.add(url):
                raise NotifyConfigError(f"receiver {r.name!r}: apprise does not understand the URL "
                                        f"{redact(url)!r}")
        self.name = r.name

    def send(self, group_key: str, key: str, events: list[AlertEvent]) -> None:
        import apprise

        ok = self.apprise.notify(title=subject(events), body=plain_text(events), body_format=apprise.NotifyFormat.TEXT)
        if not ok:  # apprise does not tell a refusal from an outage: retry with back-off
            raise DeliveryError(f"apprise could not deliver to receiver {self.name!r} (see the log above)",
                                retryable=True)


class LogSender:
    """JSON lines appended to a file (the demo's receiver; also an audit trail)."""

    def __init__(self, r: Receiver, home: Path) -> None:
        path = Path(r.log.path)
        self.path = path if path.is_absolute() else home / path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = r.name

    def send(self, group_key: str, key: str, events: list[AlertEvent]) -> None:
        try:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(payload(self.name, group_key, key, events), ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc}", retryable=True) from None


def register_secrets(r: Receiver, environ: dict[str, str]) -> None:
    """What of this receiver's configuration no log line, stored error or history may show."""
    if r.webhook is not None:
        secrets.add_url(r.webhook.url)
        secrets.add(*r.webhook.headers.values())
    elif r.slack is not None:
        secrets.add_url(r.slack.url)
    elif r.apprise is not None:
        for url in r.apprise.urls:
            secrets.add_url(url, whole=True)
    elif r.email is not None and r.email.password_env:
        secrets.add(environ.get(r.email.password_env))


def make_sender(r: Receiver, timeout: timedelta, home: Path, environ: dict[str, str] | None = None):
    """``environ``: where an e-mail receiver's ``password_env`` is looked up (the entry point
    passes the process environment; nothing here reads it)."""
    register_secrets(r, environ or {})
    kind = r.kind
    if kind == "webhook":
        return WebhookSender(r, timeout)
    if kind == "slack":
        return SlackSender(r, timeout)
    if kind == "email":
        return EmailSender(r, timeout, environ or {})
    if kind == "apprise":
        return AppriseSender(r, timeout)
    return LogSender(r, home)


__all__ = ["DeliveryError", "make_sender", "payload", "plain_text", "subject"]
