"""Opening the store: stages that start together on a fresh store all get it, once migrated."""
from __future__ import annotations

import multiprocessing
import os
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, text

STAGES = 6  # the demo starts five stages at once; one more for margin


def _open(args: tuple[str, str]) -> str:
    """One stage: wait for the start signal, open the store, say what happened."""
    url, go = args
    from moodwire.errors import MoodwireError
    from moodwire.store import open_store

    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        open_store(url).dispose()
        return "ok"
    except MoodwireError as exc:
        return str(exc)


def _race(url: str, folder: Path) -> list[str]:
    go = folder / f"go-{uuid.uuid4().hex}"
    with multiprocessing.get_context("spawn").Pool(STAGES) as pool:
        answers = pool.map_async(_open, [(url, str(go))] * STAGES)
        time.sleep(1.0)  # every process imported and waiting
        go.touch()
        return answers.get(timeout=60)


def _versions(url: str) -> list[int]:
    from moodwire.store import schema_version

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(select(schema_version.c.version).order_by(schema_version.c.version)).scalars())
    finally:
        engine.dispose()


def test_stages_opening_a_new_sqlite_store_at_once_all_get_it_migrated_once(tmp_path):
    from moodwire.store import SCHEMA_VERSION

    for round_ in range(3):  # before the lock, 10 rounds of 10 failed with "schema_version already exists"
        url = f"sqlite:///{tmp_path}/round{round_}/moodwire.db"
        assert _race(url, tmp_path) == ["ok"] * STAGES
        assert _versions(url) == list(range(1, SCHEMA_VERSION + 1))


def test_stages_opening_a_new_postgresql_store_at_once_all_get_it_migrated_once(postgres_url, tmp_path):
    from moodwire.store import SCHEMA_VERSION

    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        for round_ in range(2):
            name = f"race_{uuid.uuid4().hex[:8]}"
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {name}"))
            url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
            assert _race(url, tmp_path) == ["ok"] * STAGES
            assert _versions(url) == list(range(1, SCHEMA_VERSION + 1))
    finally:
        admin.dispose()


def test_an_in_memory_store_opens_migrated():
    from moodwire.store import SCHEMA_VERSION, open_store, schema_version

    engine = open_store("sqlite:///:memory:")  # answers "memory" to WAL: no endless retry
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
        assert conn.execute(select(schema_version.c.version).order_by(schema_version.c.version.desc())).scalar() \
            == SCHEMA_VERSION


@pytest.mark.parametrize("url", ["nosuchdb://x", "sqlite:///{folder}"])
def test_an_unusable_store_is_one_clear_line(url, tmp_path):
    from moodwire.store import StoreError, open_store

    with pytest.raises(StoreError) as caught:
        open_store(url.format(folder=tmp_path))  # a folder, not a file
    assert "\n" not in str(caught.value)
    assert "MOODWIRE_STORE_URL" in str(caught.value) or "cannot open the store" in str(caught.value)
