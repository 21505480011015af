"""Sign-in for the dashboard: every page and callback behind it (OWASP ASVS 4.0 level 2, V2-V4).

- Users and hashes from the users file (``dashboards.passwords``), or a trusted reverse-proxy
  header naming the user on every request.
- Sessions held on the server (``dashboards.sessions``): the cookie (signed, HttpOnly,
  SameSite=Lax, Secure when set) carries a session id made anew at every sign-in; sign-out, a
  removed user or a changed hash ends it at the next request.
- CSRF: the sign-in and sign-out forms carry a token bound to the browser's cookie; every POST
  whose Origin (or Referer) is another site is refused. Dash's callbacks are JSON POSTs, which
  a form on another site cannot send.
- Failed sign-ins are limited (Flask-Limiter, in memory: one dashboard process) so that no
  client can turn them against another (OWASP ASVS 4.0 V2.2.1, anti-automation without denial
  of service): per client address, per user name from one address, and per user name over
  every client that has not signed in as that user before — a browser that has carries a
  signed device cookie (OWASP's device cookies) and is spared that last limit, so a guessing
  attack spread over many addresses cannot lock the user out of their own browsers. Behind a
  reverse proxy the client address is the one the proxy puts in X-Forwarded-For: the WSGI
  server (waitress) takes it from the proxy named by MOODWIRE_DASHBOARD_TRUSTED_PROXY and from
  no one else (``moodwire_cli.ui``). Beyond a limit the form answers 429,
  logged and counted (``moodwire_dashboard_signin_refused_total``). An unknown user name costs
  the same hashing as a wrong password.
- Headers on every response: a script Content-Security-Policy (only this site's scripts and
  Dash's own inline one, by hash), no framing, no MIME sniffing, no Referer to other sites.
"""

from __future__ import annotations

import hmac
import html
import logging
import secrets
from pathlib import Path
from urllib.parse import quote, urlparse

from flask import Flask, Response, g, redirect, request, session
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from prometheus_client import CollectorRegistry, Counter

from dashboards.passwords import UsersFile, credential_id, hash_password, needs_rehash, verify_password
from dashboards.sessions import Sessions

log = logging.getLogger("moodwire.dashboard")
OPEN_PATHS = ("/login", "/logout", "/healthz", "/metrics")
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def content_security_policy(script_hashes: list[str]) -> str:
    """Scripts from this site and the inline ones named by hash; styles may be inline (Plotly
    and Dash components set them); figures export to data: and blob: images."""
    scripts = " ".join(["'self'", *script_hashes])  # Dash's hashes come quoted
    return ("default-src 'self'; script-src " + scripts + "; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
            "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


def security_headers(script_hashes: list[str]) -> dict[str, str]:
    return {"Content-Security-Policy": content_security_policy(script_hashes), "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin"}


def secret_key(home: Path) -> bytes:
    """The cookie-signing key, made once and kept in MOODWIRE_HOME (cookies survive restarts;
    the sessions they name are checked on the server)."""
    path = Path(home) / "dashboard.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(secrets.token_bytes(32))
        path.chmod(0o600)
    return path.read_bytes()


def current_user() -> str | None:
    return g.get("user")


def csrf_token() -> str:
    """This browser's form token (kept in its signed cookie); "" outside a request."""
    try:
        token = session.get("csrf")
        if not token:
            token = session["csrf"] = secrets.token_urlsafe(32)
        return token
    except RuntimeError:
        return ""


def _csrf_ok() -> bool:
    sent, kept = request.form.get("csrf", ""), session.get("csrf", "")
    return bool(sent and kept) and hmac.compare_digest(sent, kept)


_STYLE = """<style>body{{font-family:system-ui,sans-serif;background:#f4f6f8;display:flex;justify-content:center;
padding-top:10vh}}form{{background:#fff;padding:2em;border-radius:8px;box-shadow:0 1px 4px #0002;min-width:18em}}
input{{display:block;width:100%;margin:.4em 0 1em;padding:.5em;box-sizing:border-box}}
.err{{color:#b00020;margin-bottom:1em}}</style>"""
_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Moodwire — sign in</title>""" + _STYLE + """
</head><body><form method="post" action="/login"><h2>Moodwire</h2>{error}
<input type="hidden" name="next" value="{next}"><input type="hidden" name="csrf" value="{csrf}">
<label>User<input id="username" name="username" autocomplete="username" autofocus></label>
<label>Password<input id="password" name="password" type="password" autocomplete="current-password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>"""
_SIGN_OUT = """<!doctype html><html><head><meta charset="utf-8"><title>Moodwire — sign out</title>""" + _STYLE + """
</head><body><form method="post" action="/logout"><h2>Moodwire</h2><p>Sign out of this browser?</p>
<input type="hidden" name="csrf" value="{csrf}"><button id="sign-out" type="submit">Sign out</button>
</form></body></html>"""


def sign_in_page(error: str = "", target: str = "/", status: int = 200) -> Response:
    note = f'<div class="err" id="login-error">{error}</div>' if error else ""
    return Response(_PAGE.format(error=note, next=html.escape(target), csrf=csrf_token()), status=status,
                    mimetype="text/html")


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


def _account_key() -> str:
    return "account:" + request.form.get("username", "")


def _pair_key() -> str:
    return f"user:{request.form.get('username', '')}@{request.remote_addr}"


DEVICE_COOKIE = "moodwire_device"
DEVICE_DAYS = 30


class Devices:
    """Device cookies: a browser that signed in as a user carries a signed token naming that
    user for ``DEVICE_DAYS`` (it proves nothing else; the session cookie stays the proof of
    sign-in)."""

    def __init__(self, key: bytes, secure: bool) -> None:
        from itsdangerous import URLSafeTimedSerializer

        self.signer, self.secure = URLSafeTimedSerializer(key, salt="moodwire-device"), secure

    def known(self) -> bool:
        """Whether this request's browser signed in before as the user the form names."""
        from itsdangerous import BadSignature

        token = request.cookies.get(DEVICE_COOKIE)
        if not token:
            return False
        try:
            user = self.signer.loads(token, max_age=DEVICE_DAYS * 86400)
        except BadSignature:
            return False
        return isinstance(user, str) and hmac.compare_digest(user, request.form.get("username", ""))

    def remember(self, response: Response, user: str) -> Response:
        response.set_cookie(DEVICE_COOKIE, self.signer.dumps(user), max_age=DEVICE_DAYS * 86400, httponly=True,
                            samesite="Lax", secure=self.secure, path="/login")
        return response


def cross_site(origin: str | None) -> str | None:
    """The other site an unsafe request came from, or None. Browsers send Origin with every POST
    (Referer where an old one does not); a request with neither is no browser's, and carries
    no one's cookie by accident. ``origin`` is the dashboard's public origin where a proxy
    changes the Host (MOODWIRE_DASHBOARD_ORIGIN); else the request's own Host must match."""
    if request.method not in UNSAFE:
        return None
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source:
        return None
    parsed = urlparse(source)
    if origin:
        return None if f"{parsed.scheme}://{parsed.netloc}" == origin.rstrip("/") else source
    return None if parsed.netloc and parsed.netloc == request.host else source


class Guard:
    """Who is signed in, for each request."""

    def __init__(self, users: UsersFile, sessions: Sessions, header: str | None) -> None:
        self.users, self.sessions, self.header = users, sessions, header

    def user(self) -> str | None:
        if self.header:
            return request.headers.get(self.header) or None
        found = self.sessions.check(session.get("sid"))
        if found is None:
            return None
        stored = self.users.get(found.user)
        if stored is None:  # every session of a removed user ends, this one with them
            ended = self.sessions.end_user(found.user)
            log.info("session of %r ended: no longer in the users file (%d sessions)", found.user, ended)
            return None
        if credential_id(stored) != found.credential:
            self.sessions.end(session.get("sid"))
            log.info("session of %r ended: the hash changed", found.user)
            return None
        return found.user


def install(server: Flask, users: UsersFile, header: str | None, key: bytes, sessions: Sessions, *,
            address_limit: str = "20/minute;100/hour", user_limit: str = "20/minute;100/hour",
            account_limit: str = "100/hour",
            registry: CollectorRegistry | None = None, secure_cookie: bool = False, origin: str | None = None,
            script_hashes: list[str] | None = None) -> None:
    """Guard every request of ``server``; add /login (failed attempts limited per address, per
    user name from one address and per user name from browsers new to it) and /logout. The
    inline scripts the policy allows can be named again later:
    ``server.config["MOODWIRE_HEADERS"] = security_headers(hashes)``."""
    devices = Devices(key, secure_cookie)
    server.secret_key = key
    server.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                         SESSION_COOKIE_SECURE=secure_cookie, SESSION_COOKIE_NAME="moodwire_session")
    guard = Guard(users, sessions, header)
    server.config["MOODWIRE_HEADERS"] = security_headers(script_hashes or [])
    limiter = Limiter(get_remote_address, app=server, storage_uri="memory://", headers_enabled=True)
    refused = Counter("moodwire_dashboard_signin_refused", "sign-ins refused by the rate limit", ["limit"],
                      registry=registry)

    @server.errorhandler(429)
    def _too_many(error):
        key_func = getattr(getattr(error, "limit", None), "key_func", None)
        which = {_account_key: "account", _pair_key: "user"}.get(key_func, "address")
        refused.labels(which).inc()
        log.warning("sign-in refused for %s: more than %s failed attempts (user %r, address %s)", which,
                    getattr(error, "description", "the limit"), request.form.get("username", ""),
                    request.remote_addr)
        return sign_in_page("Too many failed sign-ins: wait a minute and try again.", status=429)

    @server.before_request
    def _guard():
        other = cross_site(origin)
        if other is not None:
            log.warning("refused a %s to %s from another site (%s)", request.method, request.path, other[:200])
            return Response("refused: a request from another site (" + html.escape(other[:200]) + "); behind a "
                            "proxy, set MOODWIRE_DASHBOARD_ORIGIN to the address users open", status=403,
                            mimetype="text/plain")
        g.user = guard.user()
        if request.path in OPEN_PATHS or g.user:
            return None
        if request.method == "GET" and not request.path.startswith(("/_dash", "/_reload", "/assets")):
            return redirect(f"/login?next={quote(request.full_path.rstrip('?'))}")
        return Response('{"error": "sign in first"}', status=401, mimetype="application/json")

    @server.route("/login", methods=["GET", "POST"])
    @limiter.limit(address_limit, methods=["POST"], deduct_when=_failed)
    @limiter.limit(user_limit, methods=["POST"], key_func=_pair_key, deduct_when=_failed)
    @limiter.limit(account_limit, methods=["POST"], key_func=_account_key, deduct_when=_failed,
                   exempt_when=devices.known)
    def login():
        target = _safe_next(request.values.get("next"))
        if request.method == "GET":
            return sign_in_page(target=target)
        if not _csrf_ok():
            return sign_in_page("This sign-in form expired or came from another page: sign in again.", target, 403)
        name, password = request.form.get("username", ""), request.form.get("password", "")
        stored = users.get(name)
        # An unknown name is verified against a dummy hash: no list of users by timing.
        if not verify_password(password, stored or users.dummy()) or stored is None:
            return sign_in_page("Wrong user name or password.", target, 401)
        if needs_rehash(stored):
            stronger = hash_password(password)
            if users.replace(name, stored, stronger):
                sessions.carry(name, credential_id(stored), credential_id(stronger))
                log.info("the hash of user %r is now Argon2id", name)
                stored = stronger
        sessions.end(session.get("sid"))
        session.clear()  # a new id and a new form token at every sign-in (no session fixation)
        session["sid"] = sessions.start(name, credential_id(stored))
        session["csrf"] = secrets.token_urlsafe(32)
        return devices.remember(redirect(target), name)

    @server.route("/logout", methods=["GET", "POST"])
    def logout():
        if request.method == "GET":  # signing out changes state: only by the form's POST
            return Response(_SIGN_OUT.format(csrf=csrf_token()), mimetype="text/html")
        if not _csrf_ok():
            return Response(_SIGN_OUT.format(csrf=csrf_token()), status=403, mimetype="text/html")
        sessions.end(session.get("sid"))
        session.clear()
        return redirect("/login")

    @server.after_request
    def _headers(response: Response) -> Response:
        for name, value in server.config["MOODWIRE_HEADERS"].items():
            response.headers.setdefault(name, value)
        return response

    @server.route("/healthz")
    def healthz():
        return {"status": "ok"}


__all__ = ["install", "secret_key", "current_user", "csrf_token", "security_headers", "content_security_policy", "cross_site",
           "sign_in_page", "Guard"]
