from __future__ import annotations

from pathlib import Path

import pytest

from moodwire.errors import SourceConfigError
from streams.ingest.sources import load_feeds


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "feeds.yaml"
    p.write_text(text)
    return p


def test_defaults_apply_and_feeds_override(tmp_path):
    feeds = load_feeds(write(tmp_path, """
defaults: {interval: 60, articles: true}
feeds:
  - {name: a, url: "https://a.example/rss"}
  - {name: b, url: "https://b.example/atom", interval: 600, headers: {Accept-Language: en}}
"""))
    assert [(f.name, f.interval, f.articles) for f in feeds] == [("a", 60, True), ("b", 600, True)]
    assert feeds[1].headers == {"Accept-Language": "en"}


@pytest.mark.parametrize("text, fragment", [
    ("feeds: []", "feeds: List should have at least 1 item"),
    ("feeds:\n  - {name: a}", "feed 'a': url: Field required"),
    ("feeds:\n  - {name: a, url: 'not a url'}", "feed 'a': url:"),
    ("feeds:\n  - {name: a, url: 'https://a.example', interval: 1}", "feed 'a': interval: Input should be greater than or equal to 5"),
    ("feeds:\n  - {name: a, url: 'https://a.example', intervall: 60}", "feed 'a': intervall: Extra inputs are not permitted"),
    ("feeds:\n  - {name: a, url: 'https://a.example'}\n  - {name: a, url: 'https://b.example'}", "feed name 'a' is used twice"),
    ("feeds:\n  - {name: a, url: 'https://a.example', headers: {If-None-Match: x}}", "set by Moodwire for conditional GET"),
    ("feeds: [unclosed", "not valid YAML"),
    ("- just a list", "must hold a mapping of key: value, not a list"),
])
def test_bad_feeds_files_name_file_feed_and_key(tmp_path, text, fragment):
    with pytest.raises(SourceConfigError) as err:
        load_feeds(write(tmp_path, text))
    assert fragment in str(err.value) and "feeds.yaml" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(SourceConfigError, match="does not exist"):
        load_feeds(tmp_path / "nope.yaml")
