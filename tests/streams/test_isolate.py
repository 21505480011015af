"""A fault in the fold sets the record it raises on aside and counts every other record as if the
faulty one had never come: the batch is folded again one record at a time
(``streams.aggregate.isolate``), so the worker never stops on a batch it would read again.

The fault is injected: the fold's ``point_of`` raises for chosen items."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streams.aggregate.fold as fold_module
from moodwire.spans import parse_windows
from streams.aggregate.fold import Aggregator
from streams.aggregate.isolate import apply_isolating
from streams.aggregate.keys import marker_key
from tests.streams.aggregate_support import WINDOWS, scored_items
from tests.streams.test_aggregate import all_windows, land, run

ITEMS = scored_items(["Earnings", "Macro", "Energy | Oil"], 240, seed=12, spread=timedelta(hours=6))


class Poisoned(Exception):
    pass


def aggregator() -> Aggregator:
    return Aggregator(parse_windows(WINDOWS), timedelta(minutes=10))


@contextmanager
def poisoned(ids: set[str]):
    """The fold's ``point_of`` raises for the items of ``ids`` (changed in place: emptied, none)."""
    real = fold_module.point_of

    def point_of(item):
        if item.id in ids:
            raise Poisoned(f"injected fault for {item.id}")
        return real(item)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fold_module, "point_of", point_of)
        yield


@settings(max_examples=30, deadline=None)
@given(bad=st.sets(st.integers(0, len(ITEMS) - 1), min_size=1, max_size=8), batch=st.sampled_from([7, 40, 240]))
def test_the_faulty_records_are_set_aside_and_the_rest_count_as_if_they_never_came(bad, batch):
    records = list(enumerate(ITEMS))
    clean_agg, clean = aggregator(), {}
    run(clean_agg, clean, [r for r in records if r[0] not in bad], batch)

    poison = {ITEMS[i].id for i in bad}
    agg, state, failed = aggregator(), {}, []
    with poisoned(poison):
        fold_all(agg, state, records, batch, bad, failed)
        assert sorted(f.offset for f in failed) == sorted(bad)
        assert state == clean  # buckets, remembered ids and the marker alike
        assert all_windows(agg, state) == all_windows(clean_agg, clean)
        poison.clear()  # the fault fixed, the dead letters sent again: not taken for duplicates
        again = agg.apply(state, 0, [(len(records) + n, f.item) for n, f in enumerate(failed)])
    assert again.duplicates == 0 and again.skipped == 0
    assert all("injected fault" in f.reason and f.reason.startswith("failed:") for f in failed)


def fold_all(agg, state, records, batch, bad, failed) -> None:
    for at in range(0, len(records), batch):
        chunk = records[at:at + batch]
        try:
            result = agg.apply(state, 0, chunk)
        except Poisoned:
            result, lost = apply_isolating(agg, state, 0, chunk)
            failed += lost
        else:
            assert not {o for o, _ in chunk} & bad
        land(state, result)


def test_a_batch_whose_every_record_fails_keeps_the_marker_where_it_was():
    agg, state = aggregator(), {}
    run(agg, state, list(enumerate(ITEMS[:50])), 50)
    marker = state[marker_key(0)]
    with poisoned({i.id for i in ITEMS[50:60]}):
        result, failed = apply_isolating(agg, state, 0, list(enumerate(ITEMS[50:60], start=50)))
    assert len(failed) == 10 and result.bucket_writes == {} and result.windows == []
    assert result.marker == marker
