"""Password hashes and the users file of the dashboard.

New hashes are Argon2id (argon2-cffi, RFC 9106's low-memory profile: 64 MiB, 3 passes), as OWASP
prefers. Hashes from earlier versions, ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``, keep
working; a user's hash is replaced by an Argon2id one at their next sign-in (in the users file
when it can be written, in memory otherwise).

``UsersFile`` reads the file again when it changes on disk, so removing a user or changing a
hash takes effect at the user's next request (their sessions end: see ``credential_id``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from moodwire.errors import DashboardError
from moodwire.yamlfile import read_mapping

log = logging.getLogger("moodwire.dashboard")
_HASHER = PasswordHasher()
PBKDF2 = "pbkdf2_sha256$"
ARGON2 = "$argon2id$"


def hash_password(password: str, iterations: int | None = None) -> str:
    """An Argon2id hash; with ``iterations``, the older PBKDF2-SHA256 form (tests use it for a
    cheap hash, and to check the upgrade at sign-in)."""
    if not password:
        raise DashboardError("an empty password is not allowed")
    if iterations is None:
        return _HASHER.hash(password)
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"{PBKDF2}{iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    if stored.startswith(ARGON2):
        try:
            return _HASHER.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme + "$" != PBKDF2:
            return False
        got = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def needs_rehash(stored: str) -> bool:
    """True for a PBKDF2 hash, or an Argon2id one with weaker parameters than today's."""
    return not stored.startswith(ARGON2) or _HASHER.check_needs_rehash(stored)


def credential_id(stored: str) -> str:
    """What a session remembers of the hash it was signed in with: a new hash ends the session."""
    return hashlib.sha256(stored.encode()).hexdigest()[:32]


def is_hash(stored: object) -> bool:
    return isinstance(stored, str) and (stored.startswith(ARGON2) or
                                        (stored.startswith(PBKDF2) and stored.count("$") == 3))


def load_users(path: str | Path) -> dict[str, str]:
    data = read_mapping(path, "dashboard users file", DashboardError, " (from MOODWIRE_DASHBOARD_USERS)")
    users = data.get("users")
    if not isinstance(users, dict) or not users:
        raise DashboardError(f"dashboard users file {path}: needs 'users:' mapping user names to password hashes "
                             "(make one with `moodwire hash-password`)")
    for name, stored in users.items():
        if not is_hash(stored):
            raise DashboardError(f"dashboard users file {path}: users.{name}: not a password hash from "
                                 "`moodwire hash-password`")
    return {str(k): v for k, v in users.items()}


class UsersFile:
    """The users and their hashes: from a file (read again once it changed, looked at no more
    than once a second), or a fixed mapping (``path`` None). A file that became unreadable or
    invalid is said once in the log; the users read last stay in force until it is fixed."""

    def __init__(self, path: str | Path | None, users: dict[str, str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._users = dict(users) if users is not None else load_users(self.path)
        self._stamp = self._stat()
        self._checked = time.monotonic()
        self._broken: str | None = None
        self._dummy: tuple[dict, str] | None = None

    def _stat(self) -> tuple | None:
        if self.path is None:
            return None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def _refresh(self) -> None:
        if self.path is None or time.monotonic() - self._checked < 1.0:
            return
        self._checked = time.monotonic()
        stamp = self._stat()
        if stamp == self._stamp:
            return
        try:
            users = load_users(self.path)
        except DashboardError as exc:
            if str(exc) != self._broken:
                log.error("%s; the users read before stay in force until it is fixed", exc)
                self._broken = str(exc)
            return
        self._users, self._stamp, self._broken = users, stamp, None
        log.info("users file %s read again: %d users", self.path, len(users))

    def get(self, name: str) -> str | None:
        with self._lock:
            self._refresh()
            return self._users.get(name)

    def __len__(self) -> int:
        return len(self._users)

    def dummy(self) -> str:
        """A hash unknown names are verified against, so that they cost what a known name costs:
        Argon2id once any user has it (all will, after their next sign-in), else PBKDF2 at the
        highest iteration count in use. Made again when the users change."""
        with self._lock:
            self._refresh()
            users = self._users
            if self._dummy is None or self._dummy[0] is not users:
                pbkdf2 = [int(h.split("$")[1]) for h in users.values() if h.startswith(PBKDF2)]
                rounds = max(pbkdf2) if pbkdf2 and len(pbkdf2) == len(users) else None
                self._dummy = (users, hash_password(os.urandom(16).hex(), rounds))
            return self._dummy[1]

    def replace(self, name: str, old: str, new: str) -> bool:
        """Put ``new`` in place of ``old`` for ``name``: in the file (the one hash string replaced,
        comments and layout kept; written whole, then renamed over) when it can be written, in
        memory in any case. False when ``old`` is no longer the user's hash."""
        with self._lock:
            if self._users.get(name) != old:
                return False
            self._users = {**self._users, name: new}  # a new mapping: dummy() sees the change
            if self.path is None:
                return True
            try:
                text = self.path.read_text()
                if text.count(old) != 1:
                    raise OSError("the old hash is not in the file once")
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
                with os.fdopen(fd, "w") as out:
                    out.write(text.replace(old, new))
                os.chmod(tmp, self.path.stat().st_mode & 0o777)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("cannot write the stronger hash of user %r into %s (%s): it stays in memory until "
                            "the dashboard restarts; replace it with `moodwire hash-password`", name, self.path,
                            exc.strerror or exc)
                return True
            self._stamp = self._stat()
            return True


__all__ = ["hash_password", "verify_password", "needs_rehash", "credential_id", "load_users", "UsersFile",
           "is_hash"]
