"""What every command shares: the settings (read once per command), data paths, signals."""

from __future__ import annotations

import click

from moodwire.settings import Settings, load_settings


def settings_of(ctx: click.Context, **overrides) -> Settings:
    """The settings of this invocation (``--config`` file, environment, ``overrides``)."""
    return load_settings(ctx.obj.get("config") if ctx.obj else None, **overrides)


def data_path(settings: Settings, rel: str) -> str:
    return str(settings.data_dir / rel)


def stop_event():
    """An Event set by the first SIGINT/SIGTERM, so a stage finishes its batch and exits."""
    import signal
    import threading

    stop = threading.Event()

    def _handler(signum, frame) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)
    return stop


def safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
