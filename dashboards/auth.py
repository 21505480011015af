"""Sign-in for the dashboard: users and PBKDF2 password hashes from a YAML file (or a trusted
reverse-proxy header); every page and callback behind it; logout. Failed sign-ins are limited
per client address and per user name (Flask-Limiter, in memory: one dashboard process);
beyond a limit the form answers 429 until the limit's window has passed, and each refusal is
logged and counted (``moodwire_dashboard_signin_refused_total``).

Hash format: ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` (``moodwire hash-password``).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, urlparse

from flask import Flask, Response, redirect, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from prometheus_client import CollectorRegistry, Counter

from dashboards.errors import DashboardError
from moodwire.yamlfile import read_mapping

ITERATIONS = 310_000
log = logging.getLogger("moodwire.dashboard")
OPEN_PATHS = ("/login", "/logout", "/healthz", "/metrics")


def hash_password(password: str, iterations: int = ITERATIONS) -> str:
    if not password:
        raise DashboardError("an empty password is not allowed")
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def load_users(path: str | Path) -> dict[str, str]:
    data = read_mapping(path, "dashboard users file", DashboardError, " (from MOODWIRE_DASHBOARD_USERS)")
    users = data.get("users")
    if not isinstance(users, dict) or not users:
        raise DashboardError(f"dashboard users file {path}: needs 'users:' mapping user names to password hashes "
                             "(make one with `moodwire hash-password`)")
    for name, stored in users.items():
        if not isinstance(stored, str) or not stored.startswith("pbkdf2_sha256$") or stored.count("$") != 3:
            raise DashboardError(f"dashboard users file {path}: users.{name}: not a password hash from "
                                 "`moodwire hash-password` (pbkdf2_sha256$iterations$salt$hash)")
    return {str(k): v for k, v in users.items()}


def secret_key(home: Path) -> bytes:
    """The session-signing key, made once and kept in MOODWIRE_HOME (sessions survive restarts)."""
    path = Path(home) / "dashboard.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def current_user() -> str | None:
    return session.get("user")


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Moodwire — sign in</title>
<style>body{{font-family:system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;padding-top:10vh}}
form{{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:18em}}
input{{display:block;width:100%;margin:.4em 0 1em;padding:.5em;box-sizing:border-box}}
.err{{color:#b00020;margin-bottom:1em}}</style></head><body>
<form method="post" action="/login"><h2>Moodwire</h2>{error}
<input type="hidden" name="next" value="{next}">
<label>User<input id="username" name="username" autocomplete="username" autofocus></label>
<label>Password<input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>"""


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no open redirect)."""
    if not target:
        return "/"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def _failed(response: Response) -> bool:
    return response.status_code == 401


def _user_key() -> str:
    return "user:" + request.form.get("username", "")


# Sent with every response: no framing (clickjacking), no MIME sniffing, no URL (with its
# query: the page state) in the Referer header to other sites.
SECURITY_HEADERS = {"X-Frame-Options": "DENY", "Content-Security-Policy": "frame-ancestors 'none'",
                    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def install(server: Flask, users: dict[str, str], header: str | None, key: bytes, *,
            address_limit: str = "20/minute;100/hour", user_limit: str = "20/minute;100/hour",
            registry: CollectorRegistry | None = None, secure_cookie: bool = False) -> None:
    """Guard every request of ``server``; add /login (failed attempts limited per address and per
    user name), /logout."""
    server.secret_key = key
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_SECURE=secure_cookie)
    # An unknown user name costs the same hashing as a wrong password: no user list by timing.
    rounds = max((int(stored.split("$")[1]) for stored in users.values()), default=ITERATIONS)
    dummy = hash_password(secrets.token_hex(16), rounds)
    limiter = Limiter(get_remote_address, app=server, storage_uri="memory://", headers_enabled=True)
    refused = Counter("moodwire_dashboard_signin_refused", "sign-ins refused by the rate limit", ["limit"],
                      registry=registry)

    @server.errorhandler(429)
    def _too_many(error):
        limit = getattr(error, "limit", None)
        which = "user" if limit is not None and limit.key_func is _user_key else "address"
        refused.labels(which).inc()
        log.warning("sign-in refused for %s: more than %s failed attempts (user %r, address %s)", which,
                    getattr(error, "description", "the limit"), request.form.get("username", ""),
                    get_remote_address())
        page = _PAGE.format(error='<div class="err" id="login-error">Too many failed sign-ins: '
                                  'wait a minute and try again.</div>', next="/")
        return Response(page, status=429, mimetype="text/html")

    @server.before_request
    def _guard():
        if header and request.headers.get(header):
            session["user"] = request.headers[header]
        if request.path in OPEN_PATHS or current_user():
            return None
        if request.method == "GET" and not request.path.startswith(("/_dash", "/_reload", "/assets")):
            return redirect(f"/login?next={quote(request.full_path.rstrip('?'))}")
        return Response('{"error": "sign in first"}', status=401, mimetype="application/json")

    @server.route("/login", methods=["GET", "POST"])
    @limiter.limit(address_limit, methods=["POST"], deduct_when=_failed)
    @limiter.limit(user_limit, methods=["POST"], key_func=_user_key, deduct_when=_failed)
    def login():
        target = _safe_next(request.values.get("next"))
        if request.method == "GET":
            return _PAGE.format(error="", next=html.escape(target))
        name, password = request.form.get("username", ""), request.form.get("password", "")
        stored = users.get(name)
        if not verify_password(password, stored or dummy) or stored is None:
            page = _PAGE.format(error='<div class="err" id="login-error">Wrong user name or password.</div>',
                                next=html.escape(target))
            return Response(page, status=401, mimetype="text/html")
        session.clear()
        session["user"] = name
        return redirect(target)

    @server.after_request
    def _headers(response: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @server.route("/logout")
    def logout():
        session.clear()
        return redirect("/login")

    @server.route("/healthz")
    def healthz():
        return {"status": "ok"}


__all__ = ["hash_password", "verify_password", "load_users", "install", "secret_key", "current_user"]
