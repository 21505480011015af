"""Polite HTTP for feeds and article pages: one User-Agent naming the project, a
per-host concurrency limit, timeouts, a response-size cap and conditional GET."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from moodwire import __version__
from moodwire.errors import FetchError

USER_AGENT = f"Moodwire/{__version__} (+https://github.com/moodwire/moodwire; financial news sentiment monitor)"


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str
    etag: str | None
    last_modified: str | None


class PoliteClient:
    """Thread-safe; at most ``per_host`` requests in flight to one host."""

    def __init__(self, per_host: int = 2) -> None:
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self._per_host = per_host
        self._locks: dict[str, threading.Semaphore] = defaultdict(lambda: threading.Semaphore(self._per_host))
        self._guard = threading.Lock()

    def _host_slot(self, url: str) -> threading.Semaphore:
        with self._guard:
            return self._locks[urlsplit(url).netloc.lower()]

    def get(self, name: str, url: str, *, timeout: float, max_bytes: int, headers: dict[str, str] | None = None,
            etag: str | None = None, last_modified: str | None = None) -> Response:
        """GET with a hard size cap and a whole-response deadline; FetchError on any failure."""
        request_headers = dict(headers or {})
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        with self._host_slot(url):
            try:
                resp = self.session.get(url, headers=request_headers, timeout=(min(timeout, 10.0), timeout),
                                        stream=True, allow_redirects=True)
            except requests.Timeout:
                raise FetchError(name, f"timed out after {timeout:.0f} s ({url})") from None
            except requests.RequestException as exc:
                raise FetchError(name, f"cannot reach {url}: {type(exc).__name__}") from None
            with resp:
                if resp.status_code == 304:
                    return Response(304, b"", "", etag, last_modified)
                if resp.status_code >= 400:
                    retryable = resp.status_code >= 500 or resp.status_code in (408, 429)
                    raise FetchError(name, f"HTTP {resp.status_code} from {url}", retryable=retryable)
                declared = resp.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise FetchError(name, f"response of {int(declared)} bytes exceeds the {max_bytes}-byte cap")
                body = bytearray()
                deadline = time.monotonic() + timeout
                try:
                    for chunk in resp.iter_content(64 * 1024):
                        body.extend(chunk)
                        if len(body) > max_bytes:
                            raise FetchError(name, f"response exceeds the {max_bytes}-byte cap")
                        if time.monotonic() > deadline:
                            raise FetchError(name, f"response took longer than {timeout:.0f} s")
                except requests.RequestException as exc:
                    raise FetchError(name, f"connection broke while reading {url}: {type(exc).__name__}") from None
                return Response(resp.status_code, bytes(body), resp.headers.get("Content-Type", ""),
                                resp.headers.get("ETag"), resp.headers.get("Last-Modified"))

    def close(self) -> None:
        self.session.close()
