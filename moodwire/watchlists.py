"""Watchlists: a risk team's own exposures, matched in every headline at the classify stage.

```yaml
watchlists:
  - name: US regional banks                  # unique; shown on the dashboard and in alerts
    description: Banks our credit desk lends to.
    keywords: [Silicon Valley Bank, SVB, Signature Bank, regional banks]
    tickers: [SIVB, $SBNY]                   # with or without $
    regex: ['\\bFirst Republic\\b']          # RE2 regular expressions, case-insensitive
    exclude: [World Bank, food bank]         # phrases whose words never count as a match
    topics: [Financials, Fed | Central Banks] # optional: only items the model gives these topics
```

Matching semantics:

- **keywords** match case-insensitively, as whole words, and across punctuation and spacing:
  the text and the keywords are folded (Unicode NFKD without accents, case-folded, every run
  of characters that are not letters or digits made one space), so ``Silicon Valley Bank``
  matches "Silicon-Valley Bank's" and ``Credit Suisse`` matches "Crédit Suisse". All
  keywords of all watchlists go into one Aho–Corasick automaton (``pyahocorasick``): one pass
  over the text, whatever the number of keywords.
- **tickers** match a cashtag in any case (``$sivb``) or the bare symbol in capitals as a
  whole word (``SIVB``, not "sivb" or "SIVBX").
- **exclude** phrases mask the text they cover: a keyword found only inside "World Bank" does
  not count, but "SVB" elsewhere in the same headline still does. Excludes do not mask
  tickers or regular expressions.
- **regex** patterns run on RE2 (``google-re2``), an engine whose time is linear in the
  title's length whatever the pattern: no pattern can stall the classify stage. RE2 has no
  lookarounds or backreferences; a pattern using them is refused when the file is loaded
  (and by ``moodwire watchlists check``), with RE2's reason.
- **topics** restrict a list to items the model gave one of those topics.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import ahocorasick
import re2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moodwire.errors import MoodwireError
from moodwire.records import WATCHLIST_KEY
from moodwire.yamlfile import describe_error, read_mapping

KEY_PREFIX = WATCHLIST_KEY  # a watchlist's aggregation key: windows, alerts and the store carry it
def compile_regex(pattern: str):
    """A watchlist pattern on RE2, case-insensitive (linear time in the text; raises re2.error)."""
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False  # the error is raised to the caller, not printed by the library
    return re2.compile(pattern, options)


_NOT_WORD = re.compile(r"[^0-9a-z]+")
_TICKER = re.compile(r"(?<![\w$])(\$?)([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)(?![\w])")


class WatchlistError(MoodwireError):
    """A watchlist file is missing or invalid (the file, the list and the key are named)."""


def watchlist_key(name: str) -> str:
    return KEY_PREFIX + name


def split_key(key: str) -> tuple[str, str]:
    """``("watchlist", name)`` for a watchlist key, ``("topic", key)`` otherwise."""
    if key.startswith(KEY_PREFIX):
        return "watchlist", key[len(KEY_PREFIX):]
    return "topic", key


def fold(text: str) -> str:
    """The form keywords and texts are compared in: accents dropped, case-folded, every run of
    non-alphanumerics one space, padded with a space on both sides."""
    if not text.isascii():  # most headlines are ASCII: no decomposition to do
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " " + _NOT_WORD.sub(" ", text.casefold()).strip() + " "


class Watchlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    keywords: list[str] = Field(default_factory=list)
    tickers: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    topics: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value != value.strip() or any(c in value for c in "\x1f\n\r\t"):
            raise ValueError("a name has no leading or trailing spaces, tabs or line breaks")
        return value

    @field_validator("keywords", "exclude")
    @classmethod
    def _phrases(cls, values: list[str]) -> list[str]:
        for value in values:
            if not fold(str(value)).strip():
                raise ValueError(f"{value!r} has no letters or digits to match")
        return values

    @field_validator("tickers")
    @classmethod
    def _tickers(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.fullmatch(r"\$?[A-Za-z][A-Za-z0-9]{0,5}(\.[A-Za-z]{1,2})?", value):
                raise ValueError(f"{value!r} is not a ticker (letters and digits, up to 6, optional $ and .X suffix)")
        return values

    @field_validator("regex")
    @classmethod
    def _regex(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                compile_regex(value)
            except re2.error as exc:
                reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
                raise ValueError(f"{value!r} is not a regular expression RE2 runs ({reason}); RE2 matches in "
                                 "linear time and has no lookarounds or backreferences: rewrite the pattern "
                                 "without them") from None
        return values

    @model_validator(mode="after")
    def _something(self) -> "Watchlist":
        if not (self.keywords or self.tickers or self.regex):
            raise ValueError("give at least one of keywords, tickers or regex")
        return self


class WatchlistFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    watchlists: list[Watchlist] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> "WatchlistFile":
        seen: set[str] = set()
        for w in self.watchlists:
            if w.name.casefold() in seen:
                raise ValueError(f"watchlist name {w.name!r} is used twice")
            seen.add(w.name.casefold())
        return self


def load_watchlists(path: str | Path, topics: tuple[str, ...] | None = None) -> list[Watchlist]:
    """The watchlists in ``path``; WatchlistError naming the file, the list and the key otherwise.
    ``topics``: the model's topics (a list restricted to another topic would never match)."""
    data = read_mapping(path, "watchlist file", WatchlistError, " (from MOODWIRE_WATCHLISTS)")
    try:
        lists = WatchlistFile.model_validate(data).watchlists
    except ValidationError as exc:
        raise WatchlistError(f"watchlist file {path}: " + "; ".join(
            describe_error(e, data, "watchlists", "watchlist") for e in exc.errors()[:5])) from None
    if topics is not None:
        check_topics(lists, topics, path)
    return lists


def check_topics(lists: list[Watchlist], topics: tuple[str, ...], path: str | Path) -> None:
    """WatchlistError when a list of ``path`` is restricted to a topic the model does not have
    (it would never match): for lists loaded before the model was."""
    for w in lists:
        unknown = [t for t in (w.topics or []) if t not in topics]
        if unknown:
            raise WatchlistError(f"watchlist file {path}: watchlist {w.name!r}: topics: {unknown[0]!r} is not a "
                                 f"topic of the model (topics: {', '.join(topics)})")


@dataclass(frozen=True)
class _Phrase:
    watchlist: int
    exclude: bool
    length: int
    text: str  # as the file spells it (what `watchlists check` names)


class Matcher:
    """Which watchlists a text matches; built once per file, cheap per text."""

    def __init__(self, watchlists: list[Watchlist]) -> None:
        self.watchlists = list(watchlists)
        self.automaton = ahocorasick.Automaton()
        entries: dict[str, list[_Phrase]] = {}
        for i, w in enumerate(self.watchlists):
            for phrase, exclude in [(k, False) for k in w.keywords] + [(e, True) for e in w.exclude]:
                folded = fold(phrase)
                entries.setdefault(folded, []).append(_Phrase(i, exclude, len(folded), phrase))
        for folded, phrases in entries.items():
            self.automaton.add_word(folded, tuple(phrases))
        if entries:
            self.automaton.make_automaton()
        self.has_phrases = bool(entries)
        self.tickers: dict[str, set[int]] = {}
        for i, w in enumerate(self.watchlists):
            for t in w.tickers:
                self.tickers.setdefault(t.lstrip("$").upper(), set()).add(i)
        self.regexes = [(i, compile_regex(r)) for i, w in enumerate(self.watchlists) for r in w.regex]
        self.topics = [None if w.topics is None else frozenset(w.topics) for w in self.watchlists]

    def match(self, text: str, topic: str | None = None) -> list[str]:
        """Names of the watchlists ``text`` matches, in file order."""
        return list(self.explain(text, topic))

    def explain(self, text: str, topic: str | None = None, surface: bool = False) -> dict[str, list[str]]:
        """The watchlists ``text`` matches (file order), each with the terms that matched it: its
        keywords not inside an exclude, tickers (``$SIVB``), and regexes (tried only when nothing
        else matched the list), written ``/pattern/`` — or, with ``surface``, as the text they
        matched (what targeted sentiment reads)."""
        terms: dict[int, list[str]] = {}
        if self.has_phrases:
            folded = fold(text)
            found: dict[int, list[tuple[tuple[int, int], str]]] = {}
            masks: dict[int, list[tuple[int, int]]] = {}
            for end, phrases in self.automaton.iter(folded):
                for p in phrases:
                    span = (end - p.length + 1, end)
                    if p.exclude:
                        masks.setdefault(p.watchlist, []).append(span)
                    else:
                        found.setdefault(p.watchlist, []).append((span, p.text))
            for i, spans in found.items():
                masked = masks.get(i, ())
                kept = [t for (s0, s1), t in spans if not any(m0 <= s0 and s1 <= m1 for m0, m1 in masked)]
                if kept:
                    terms[i] = list(dict.fromkeys(kept))
        if self.tickers:
            for dollar, symbol in _TICKER.findall(text):
                if dollar or symbol.isupper():
                    for i in self.tickers.get(symbol.upper(), ()):
                        terms.setdefault(i, []).append("$" + symbol.upper())
        for i, pattern in self.regexes:
            if i not in terms:
                found_at = pattern.search(text)
                if found_at:
                    terms[i] = [found_at.group(0) if surface else f"/{pattern.pattern}/"]
        return {self.watchlists[i].name: terms[i] for i in sorted(terms)
                if self.topics[i] is None or topic is None or topic in self.topics[i]}


__all__ = ["Watchlist", "WatchlistError", "Matcher", "load_watchlists", "check_topics", "fold", "watchlist_key", "split_key",
           "KEY_PREFIX"]
