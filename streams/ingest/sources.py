"""The feeds file: a validated list of news feeds to poll.

    defaults:            # optional, applied to every feed
      interval: 300      # seconds between polls
    feeds:
      - name: fed-press
        url: https://www.federalreserve.gov/feeds/press_all.xml
        interval: 600
        headers: {Accept-Language: en}
        articles: false  # fetch each new item's page and extract its text (needs trafilatura)
        lang: en
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, field_validator

from moodwire.yamlfile import read_mapping
from moodwire.errors import SourceConfigError


class FeedDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: float = Field(300.0, ge=5.0, le=86_400.0, description="seconds between polls")
    timeout: float = Field(15.0, gt=0.0, le=300.0, description="seconds for one HTTP request")
    max_bytes: int = Field(5_000_000, ge=1_000, le=100_000_000, description="largest response accepted")
    max_backoff: float = Field(3600.0, ge=5.0, description="longest wait after repeated failures")
    articles: bool = False
    lang: str | None = None


class Feed(FeedDefaults):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    url: HttpUrl
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _no_reserved(cls, headers: dict[str, str]) -> dict[str, str]:
        reserved = {"if-none-match", "if-modified-since"}
        bad = [h for h in headers if h.lower() in reserved]
        if bad:
            raise ValueError(f"{bad[0]} is set by Moodwire for conditional GET")
        return headers


class FeedsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: FeedDefaults = Field(default_factory=FeedDefaults)
    feeds: list[dict] = Field(min_length=1)


def load_feeds(path: str | Path) -> list[Feed]:
    """Read and validate a feeds file; errors name the file, the feed and the key."""
    path = Path(path)
    raw = read_mapping(path, "feeds file", SourceConfigError)
    try:
        doc = FeedsFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise SourceConfigError(f"feeds file {path}: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    feeds, names = [], set()
    defaults = doc.defaults.model_dump(exclude_unset=True)
    for index, entry in enumerate(doc.feeds):
        label = entry.get("name", f"#{index + 1}") if isinstance(entry, dict) else f"#{index + 1}"
        try:
            feed = Feed.model_validate({**defaults, **entry})
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(map(str, err["loc"])) or "<feed>"
            raise SourceConfigError(f"feeds file {path}: feed {label!r}: {key}: {err['msg']}") from None
        if feed.name in names:
            raise SourceConfigError(f"feeds file {path}: feed name {feed.name!r} is used twice")
        names.add(feed.name)
        feeds.append(feed)
    return feeds
