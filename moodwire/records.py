"""Wire records (JSON, UTF-8, times ISO-8601 in UTC) with strict decode/encode.

``decode(RecordType, payload)`` raises :class:`RecordError` — and only that —
for garbage, invalid UTF-8, oversize payloads, missing fields or wrong types.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from datetime import datetime, timezone
from functools import lru_cache
from typing import Annotated, Literal, TypeVar

from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, PlainSerializer, ValidationError,
                      field_validator, model_validator)

from moodwire.errors import RecordError

MAX_PAYLOAD_BYTES = 1_000_000
MAX_DEAD_PAYLOAD = 144 * 1024  # bytes of a failed payload a dead letter carries: base64 stays under str_max_length


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp needs a time zone (use ISO-8601 with Z or an offset)")
    # The wire keeps milliseconds; hold the same precision so encode/decode round-trips.
    # (``replace`` costs more than the rest: skipped when there is nothing to cut, as for every
    # time this project writes.)
    value = value.astimezone(timezone.utc)
    extra = value.microsecond % 1000
    return value.replace(microsecond=value.microsecond - extra) if extra else value


@lru_cache(maxsize=65_536)  # the same evidence times are written again and again (window records)
def format_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


UtcTime = Annotated[datetime, AfterValidator(_to_utc), PlainSerializer(format_time, return_type=str)]
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _not_before_1970(value: datetime) -> datetime:
    if value < EARLIEST:
        raise ValueError(f"{format_time(value)} is before 1970 (a feed's empty date?): no news is that old")
    return value


# A publish time: windows, watermarks and spans are computed from it, and a zero date (year 1,
# as some feeds write a missing one) overflows that arithmetic.
PublishTime = Annotated[UtcTime, AfterValidator(_not_before_1970)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Sentiment = Literal["negative", "neutral", "positive"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, str_max_length=200_000)

    def encode(self) -> bytes:
        return self.model_dump_json().encode("utf-8")

    @classmethod
    def trusted(cls, **values):
        """An instance of values valid by construction (computed from validated records),
        not validated again: ``model_construct`` for a complete set of fields, ~4x cheaper
        (the aggregate worker builds hundreds of window records a second). Callers test that
        what they build survives the strict ``decode`` unchanged."""
        fields = cls.__pydantic_fields__  # ``model_fields`` goes through pydantic's deprecation wrapper (~1 µs)
        if len(values) != len(fields):
            raise TypeError(f"{cls.__name__}.trusted needs every field: missing "
                            f"{sorted(set(fields) - set(values))}, unknown {sorted(set(values) - set(fields))}")
        record = cls.__new__(cls)
        object.__setattr__(record, "__dict__", values)
        object.__setattr__(record, "__pydantic_fields_set__", set(values))
        object.__setattr__(record, "__pydantic_extra__", None)
        object.__setattr__(record, "__pydantic_private__", None)
        return record


def item_id(url: str | None, source: str, title: str) -> str:
    """Hex SHA-256 of the canonical URL, or of source + title when there is no URL."""
    basis = url if url else f"{source}\n{title}"
    return hashlib.sha256(basis.encode("utf-8")).hexdigest()


# What no sink can store (PostgreSQL refuses NUL in text; a lone surrogate is not UTF-8): an
# item's text is cleaned on decode by one rule, so a feed's stray byte never stops a stage.
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # C0 controls but tab, LF, CR; and DEL
_SURROGATES = re.compile(r"[\ud800-\udfff]")
_UNSAFE = re.compile(f"{_CONTROLS.pattern}|{_SURROGATES.pattern}")  # either: one search on the common path


def clean_text(value):
    """``value`` with C0 control characters (but tab, line feed and carriage return) and DEL
    removed and lone UTF-16 surrogates replaced by U+FFFD; anything but a string unchanged."""
    if not isinstance(value, str) or _UNSAFE.search(value) is None:
        return value
    return _SURROGATES.sub("\ufffd", _CONTROLS.sub("", value))


class NewsItem(Record):
    """``news.raw``: one normalised news item. Its text fields are cleaned on decode
    (``clean_text``)."""

    id: str = Field(pattern=r"^[0-9a-f]{64}$")
    url: str | None = Field(default=None, max_length=4096)
    source: str = Field(min_length=1, max_length=200)
    title: str = Field(min_length=1, max_length=2000)
    body: str | None = None
    published_at: PublishTime
    fetched_at: UtcTime
    lang: str | None = Field(default=None, max_length=16)
    published_estimated: bool = False  # publish time missing at the source; fetch time used

    _clean = field_validator("url", "source", "title", "body", "lang", mode="before")(clean_text)


WATCHLIST_KEY = "watchlist:"  # a watchlist's key in news.scored, windows, alerts and the store: watchlist:NAME


def watchlist_name(key: str) -> str | None:
    """The watchlist a key names, or None for a topic's key."""
    return key[len(WATCHLIST_KEY):] if key.startswith(WATCHLIST_KEY) else None


def key_label(key: str) -> str:
    """A key as every page, report and terminal line writes it: a topic's name, or
    "watchlist: NAME"."""
    name = watchlist_name(key)
    return f"watchlist: {name}" if name is not None else key


class InputProgress(Record):
    """One ``news.raw`` partition as ``moodwire classify`` held it when it sent a record
    (invariant I8 of docs/aggregate-worker.md)."""

    time: UtcTime | None = None  # its newest publish time read so far (future-dated items excluded)
    behind: bool  # records remained unread on it: items up to ``time`` minus the lateness may follow


class Reading(Record):
    """One sentiment reading: of a headline, or of a headline toward a watchlist's terms."""

    sentiment: Sentiment
    probs: dict[Sentiment, Probability]
    score: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)


class TargetReading(Reading):
    """What a headline says about one watchlist's exposure: the entity head's reading of the
    terms of that list the headline matched (several terms: their probabilities averaged)."""

    terms: list[str] = Field(min_length=1)


class ScoredNews(NewsItem):
    """``news.scored``: a news item with its topic and sentiment."""

    topic: str = Field(min_length=1)
    topic_confidence: Probability
    sentiment: Sentiment
    probs: dict[Sentiment, Probability]
    score: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    model: str = Field(min_length=1)
    classified_at: UtcTime
    # the watchlists (moodwire/watchlists.py) the item matched; absent in records before them
    watchlists: list[str] = Field(default_factory=list)
    # set on the copy of an item that news.scored carries for one of its watchlists (keyed by
    # that watchlist): the aggregate worker folds it into the watchlist's windows
    watchlist: str | None = None
    # Lateness is judged at the input (I8): the news.raw partition the item came from, that
    # partition's newest publish time up to and including the item, and every news.raw
    # partition classify held when it sent the record. Absent in records before them: such a
    # record is judged against its news.scored partition's newest publish time.
    source_partition: int | None = Field(default=None, ge=0)
    input_time: UtcTime | None = None
    inputs: dict[int, InputProgress] = Field(default_factory=dict)
    # Targeted sentiment: per matched watchlist, the reading toward that list's matched terms.
    # On a watchlist copy (``watchlist`` set) ``sentiment``, ``probs`` and ``score`` are that
    # list's targeted reading, what its windows fold, and ``headline`` keeps the headline's
    # own. Absent in records before targeted reading (and from models without the entity
    # head): every copy then carries the headline's reading, as before.
    targets: dict[str, TargetReading] = Field(default_factory=dict)
    headline: Reading | None = None

    def for_watchlist(self, name: str) -> "ScoredNews":
        """The copy of this item that news.scored carries for the watchlist ``name``."""
        target = self.targets.get(name)
        if target is None:
            return self.model_copy(update={"watchlist": name})
        own = Reading(sentiment=self.sentiment, probs=self.probs, score=self.score)
        return self.model_copy(update={"watchlist": name, "sentiment": target.sentiment, "probs": dict(target.probs),
                                       "score": target.score, "headline": own})

    @property
    def key(self) -> str:
        """What the item is aggregated under in this record: its topic, or ``watchlist:NAME``."""
        return self.topic if self.watchlist is None else WATCHLIST_KEY + self.watchlist

    @field_validator("probs")
    @classmethod
    def _complete(cls, probs: dict[str, float]) -> dict[str, float]:
        if set(probs) != {"negative", "neutral", "positive"}:
            raise ValueError("probs needs exactly negative, neutral and positive")
        if not math.isclose(sum(probs.values()), 1.0, abs_tol=1e-3):
            raise ValueError(f"probs sum to {sum(probs.values()):.4f}, not 1")
        return probs


class Evidence(Record):
    """A headline behind a window or an alert."""

    id: str
    title: str
    url: str | None = None
    score: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    published_at: UtcTime


# Score cutoffs every window counts exactly, with its earliest items below each: the
# ``negative_count`` rules judge these (their ``score_below`` is one of them), and a rule that
# fires as the headlines arrive takes its start from the earliest ones (alerts/evaluate.py).
LADDER = (-0.5, -0.6, -0.7, -0.8, -0.9)


class Strong(Record):
    """A window's items scored below one cutoff of ``LADDER``: how many, and the earliest of
    them (up to 5, by publish time)."""

    below: float = Field(ge=-1.0, le=1.0)
    count: int = Field(ge=1)
    first: list[Evidence] = Field(default_factory=list)


class TopicWindow(Record):
    """``sentiment.windows``: the aggregate of one topic over one window."""

    topic: str = Field(min_length=1)
    window: str = Field(pattern=r"^\d+[smhd]$")
    start: UtcTime
    end: UtcTime
    count: int = Field(ge=0)
    mean_score: float = Field(ge=-1.0, le=1.0, allow_inf_nan=False)
    sum_sq: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    negative_share: Probability
    neutral_share: Probability = 0.0
    positive_share: Probability
    late_count: int = Field(default=0, ge=0)
    most_negative: list[str] = Field(default_factory=list)
    most_positive: list[str] = Field(default_factory=list)
    # the most negative then the most positive items (ids as above), with their headlines
    evidence: list[Evidence] = Field(default_factory=list)
    final: bool = False
    # what ``topic`` names: one of the model's topics, or a watchlist (``topic`` is then
    # ``watchlist:NAME``, so the two never collide in keys, fingerprints or the store)
    kind: Literal["topic", "watchlist"] = "topic"
    # per score cutoff with items below it: their count and earliest (negative_count rules);
    # None: not counted (no negative_count rule named this window when its buckets filled)
    strong: list[Strong] | None = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> "TopicWindow":
        if self.end <= self.start:
            raise ValueError("window end must be after its start")
        return self

    def encode(self) -> bytes:
        """The bytes of ``model_dump_json``, with the ladder's entries spliced in from the JSON
        of each entry object: overlapping windows share those objects and their headlines (the
        aggregate builds them through caches), and serialising up to 25 headlines again for
        every window was most of the cost of a window record that counts them. The rest, in one
        call, costs the worker less than splicing it (under py-spy: 440 samples against 597 when
        the evidence was spliced too; bench_fold, at a fifth of the density, shows splicing
        ~2 µs/item cheaper); tests/moodwire/test_records.py checks the bytes."""
        if not self.strong:
            return self.model_dump_json().encode("utf-8")
        head = self.model_dump_json(exclude=_SPLICED)
        return f'{head[:-1]},"strong":[{",".join(map(_fragment, self.strong))}]}}'.encode("utf-8")


_SPLICED = {"strong"}  # TopicWindow's last field
_FIRST = {"first"}  # Strong's last field
_FRAGMENTS: dict[int, tuple[Record, str]] = {}  # id(record) → (record, its JSON); the record held, so ids stay its


def _fragment(record: Record) -> str:
    """``record.model_dump_json()``, remembered by object identity (records are frozen)."""
    found = _FRAGMENTS.get(id(record))
    if found is not None and found[0] is record:
        return found[1]
    if len(_FRAGMENTS) >= 65_536:
        _FRAGMENTS.clear()
    if isinstance(record, Strong):  # its evidence shared with other cutoffs and windows: spliced in too
        text = f'{record.model_dump_json(exclude=_FIRST)[:-1]},"first":[{",".join(map(_fragment, record.first))}]}}'
    else:
        text = record.model_dump_json()
    _FRAGMENTS[id(record)] = (record, text)
    return text


class AlertEvent(Record):
    """``alerts``: one transition of one alert (rule on topic) to firing or resolved."""

    fingerprint: str = Field(min_length=1)
    rule: str = Field(min_length=1)
    topic: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    value: float = Field(allow_inf_nan=False)
    threshold: float = Field(allow_inf_nan=False)
    window: str
    starts_at: UtcTime
    ends_at: UtcTime | None = None
    evidence: list[Evidence] = Field(default_factory=list)
    seq: int = Field(ge=1)
    severity: str = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    # a resolution the value did not earn (too few items, too short a baseline): why
    reason: str | None = Field(default=None, max_length=500)
    kind: Literal["topic", "watchlist"] = "topic"  # what ``topic`` names (see TopicWindow)
    # the window whose reading made this transition (None in events written before they were kept)
    window_start: UtcTime | None = None
    window_end: UtcTime | None = None


class DeadLetter(Record):
    """``news.deadletter``: a message a stage could not decode or process."""

    stage: str
    topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str = "malformed"  # malformed, late, future, misrouted, failed, refused (docs/data-engineers.md)
    error: str
    payload_b64: str
    at: UtcTime

    @classmethod
    def of(cls, stage: str, topic: str, partition: int | None, offset: int | None, error: str,
           payload: bytes | None, reason: str = "malformed") -> "DeadLetter":
        """A dead letter keeps up to ``MAX_DEAD_PAYLOAD`` bytes of the payload: more did not
        fit a record's string limit (a ValidationError, so the stage failed on that message
        again and again), and a whole near-1 MB payload in base64 would exceed the broker's
        message size. A cut payload says so, with where the whole record is."""
        payload = payload or b""
        error = error[:2000]
        if len(payload) > MAX_DEAD_PAYLOAD:
            where = f"{topic}[{partition}]@{offset}" if partition is not None and offset is not None else topic
            error += (f" (payload cut to its first {MAX_DEAD_PAYLOAD} of {len(payload)} bytes, "
                      f"sha256 {hashlib.sha256(payload).hexdigest()}; the whole record is at {where})")
            payload = payload[:MAX_DEAD_PAYLOAD]
        return cls(stage=stage, topic=topic, partition=partition, offset=offset, reason=reason, error=error,
                   payload_b64=base64.b64encode(payload).decode("ascii"), at=datetime.now(timezone.utc))


R = TypeVar("R", bound=Record)


def decode(record_type: type[R], payload: bytes | bytearray | memoryview | str | None) -> R:
    """Decode and validate one JSON payload; any problem raises RecordError."""
    if payload is not None and not isinstance(payload, str) and len(payload) <= MAX_PAYLOAD_BYTES:
        try:  # fast path: parse and validate in one go; any problem is re-examined below for the message
            return record_type.model_validate_json(payload)
        except (ValidationError, ValueError, TypeError, RecursionError):
            pass
    name = record_type.__name__
    if payload is None:
        raise RecordError(f"{name}: empty message (no value)")
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="surrogatepass")
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise RecordError(f"{name}: payload of {size} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
    try:
        text = bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{name}: payload is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise RecordError(f"{name}: payload is not JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{name}: payload must be a JSON object, got {type(data).__name__}")
    try:
        return record_type.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<record>'}: {e['msg']}" for e in exc.errors()[:5])
        raise RecordError(f"{name}: {problems}") from None
    except (ValueError, TypeError, RecursionError) as exc:
        raise RecordError(f"{name}: {exc}") from None
