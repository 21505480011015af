"""The one settings object, read once per entry point and passed down.

Sources, later ones winning: defaults → YAML file (``MOODWIRE_CONFIG`` or
``--config``) → environment variables with prefix ``MOODWIRE_``. Every field
below is settable as ``MOODWIRE_<FIELD>`` (upper case) or as ``field:`` in YAML.
"""

from __future__ import annotations

import os
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from moodwire.errors import SettingsError
from moodwire.spans import WindowSpec, parse_span, parse_windows
from moodwire.yamlfile import read_mapping

if TYPE_CHECKING:
    from moodwire.retention import Retention

ENV_PREFIX = "MOODWIRE_"
# Variables with the prefix that are not settings: the settings file itself, and the
# virtual environment scripts/setup and scripts/test install into.
NOT_SETTINGS = frozenset({f"{ENV_PREFIX}CONFIG", f"{ENV_PREFIX}VENV"})


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    # Kafka
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="bootstrap servers, host:port[,host:port]")
    kafka_partitions: int = Field(4, ge=1, le=1024, description="partitions of every Moodwire topic")
    kafka_replication: int = Field(1, ge=1, le=16, description="replication factor of every Moodwire topic")
    kafka_session_timeout_ms: int = Field(10_000, ge=1_000, description="consumer group session timeout")
    kafka_heartbeat_interval_ms: int = Field(1_000, ge=100, description="consumer group heartbeat interval")
    kafka_fetch_max_wait_ms: int = Field(50, ge=0, le=10_000, description="longest a fetch waits for new records "
                                                                          "(the embedded broker answers only then)")
    # Storage and files
    home: Path = Field(Path("var"), description="folder for local state (SQLite store, caches)")
    store_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///<home>/moodwire.db")
    data_dir: Path = Field(Path("../shared/data"), description="labelled data for moodwire train (tfns/, tfnt/, news/)")
    # Classifier
    model: str | None = Field(None, description="trained model directory; default: the committed model")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where the model runs: cuda (fp16), cpu, "
                                                                       "or auto (a GPU when one is visible)")
    int8: bool = Field(True, description="on the CPU, int8-quantised inference (off: fp32, slower; results then "
                                         "do not depend on how items are batched)")
    cpu_runtime: Literal["onnx", "torch"] = Field("onnx", description="on the CPU, the runtime: onnx (ONNX Runtime, "
                                                                      "fused blocks, built once per model into "
                                                                      "onnx_cache) or torch (PyTorch)")
    onnx_cache: Path | None = Field(None, description="folder of the ONNX runtime's built models (~30 MB each); "
                                                      "default <home>/onnx")
    max_batch: int = Field(64, ge=1, le=4096, description="classify: a batch closes at this many items")
    max_wait_ms: int = Field(50, ge=0, le=60_000, description="classify: ... or this long after its first item")
    # Aggregation (moodwire aggregate, a Faust worker)
    aggregate_windows: str = Field("5m,1h/5m,24h/1h", description="windows as span[/step], comma-separated")
    aggregate_lateness: str = Field("10m", description="allowed lateness behind the partition's newest event")
    aggregate_future_tolerance: str = Field(
        "15m", description="an item dated more than this after the stage's clock is dead-lettered (reason future)")
    aggregate_idle: str = Field("30s", description="a partition quiet this long has its windows closed by a heartbeat")
    aggregate_idle_clock: bool = Field(True, description="when every partition is idle, close windows by the wall "
                                                         "clock (off for back-tests of old news)")
    aggregate_emit_interval_ms: int = Field(1000, ge=0, le=600_000, description="throttle of window updates")
    # 4,000: fewer per-batch steps (bucket writes, final-window scans, two acknowledged sends) than
    # 1,000 — bench items, 7 runs each: 119 vs 136 µs CPU/item, median 6,190 vs 4,931 items/s.
    # Only a backlog fills a batch; live news comes a few records a fetch.
    aggregate_batch: int = Field(4000, ge=1, le=100_000, description="most records per micro-batch (a fetch "
                                                                      "may bring fewer; none is waited for)")
    aggregate_store: str = Field("memory://", description="Faust table store: memory:// or rocksdb://")
    aggregate_recovery_check: bool = Field(
        True, description="Faust recovery consistency check (persisted offsets vs. the changelog's verified end)")
    # Alerts
    alert_rules: Path | None = Field(None, description="YAML file of alert rules")
    watchlists: Path | None = Field(None, description="YAML file of watchlists matched at the classify stage")
    notify_config: Path | None = Field(None, description="YAML file of the notifier: routing tree, receivers")
    # Store retention (moodwire store prune)
    store_keep_items: str = Field("90d", description="how long scored items are kept, by publish time "
                                                     "(a duration such as 90d, or forever)")
    store_keep_windows: str = Field(
        "5m=30d,1h=90d,*=730d", description="how long windows are kept, by window name (WINDOW=KEEP,…; * for the "
                                           "rest), by window end")
    store_keep_alerts: str = Field("365d", description="how long alert episodes are kept after they resolved")
    store_keep_deliveries: str = Field("90d", description="how long finished notification records are kept")
    # Dashboard
    dashboard_host: str = Field("127.0.0.1", description="address the dashboard listens on")
    dashboard_port: int = Field(8050, ge=1, le=65535, description="dashboard port")
    dashboard_users: Path | None = Field(None, description="YAML of users: password hashes (moodwire hash-password)")
    dashboard_auth_header: str | None = Field(
        None, description="trust this request header for the user name (behind an authenticating reverse proxy)")
    dashboard_refresh_s: int = Field(30, ge=2, le=3600, description="live refresh interval of the dashboard")
    dashboard_banner: str | None = Field(None, max_length=300, description="a line shown at the top of every "
                                         "dashboard page (e.g. that a demo's news is replayed)")
    dashboard_threads: int = Field(8, ge=1, le=256, description="request threads of the dashboard's WSGI server "
                                                               "(waitress)")
    dashboard_signin_limit: str = Field(
        "20/minute;100/hour", description="failed sign-ins allowed per client address (limits syntax, ';' between "
                                          "limits); beyond them sign-in is refused with 429 until the window passes")
    dashboard_signin_user_limit: str = Field(
        "20/minute;100/hour", description="failed sign-ins allowed per user name from one client address")
    dashboard_signin_account_limit: str = Field(
        "100/hour", description="failed sign-ins allowed per user name from all the browsers that have not signed "
                                "in as that user in the last 30 days (those carry a device cookie and are spared)")
    dashboard_trusted_proxy: str | None = Field(
        None, description="the address of the reverse proxy in front of the dashboard (e.g. 127.0.0.1; '*' for any, "
                          "only where no one else can reach the port): the client's address is then read from the "
                          "X-Forwarded-For it sends, and the sign-in limits count each client apart")
    dashboard_trusted_proxy_count: int = Field(
        1, ge=1, le=10, description="proxies in a chain in front of the dashboard, each appending to X-Forwarded-For")
    dashboard_cookie_secure: bool = Field(False, description="session cookie sent over HTTPS only: on behind a "
                                          "TLS proxy")
    dashboard_session_idle: str = Field("30m", description="a dashboard session ends after this long without a "
                                        "request (an open page with live refresh keeps it going)")
    dashboard_session_lifetime: str = Field("12h", description="a dashboard session ends this long after its "
                                            "sign-in, however active")
    dashboard_origin: str | None = Field(None, description="the address users open (https://host[:port]) when a "
                                         "proxy changes the Host header: POSTs from any other origin are refused")
    # Observability
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus port (0 = off)")
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoint listens on")
    health_broker_timeout: str = Field("30s", description="/healthz answers 503 once no bootstrap server has "
                                       "been reachable this long")
    health_stall: str = Field("2m", description="/healthz answers 503 once records wait and none has been "
                              "processed this long")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="logging threshold")
    log_json: bool = Field(False, description="one JSON object per log line (with item id, fingerprint, "
                                              "partition, offset fields where they apply)")

    @field_validator("kafka_bootstrap")
    @classmethod
    def _check_bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{server!r} is not host:port")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("aggregate_windows")
    @classmethod
    def _check_windows(cls, value: str) -> str:
        parse_windows(value)
        return value

    @field_validator("dashboard_signin_limit", "dashboard_signin_user_limit", "dashboard_signin_account_limit")
    @classmethod
    def _check_limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            items = parse_many(value)
        except ValueError:
            raise ValueError("expected limits such as 20/minute;100/hour") from None
        if any(item.amount < 1 for item in items):
            raise ValueError("a limit of 0 refuses every sign-in, correct passwords too: allow at least 1 "
                             "(such as 20/minute;100/hour)")
        return value

    @field_validator("store_keep_items", "store_keep_alerts", "store_keep_deliveries")
    @classmethod
    def _check_keep(cls, value: str) -> str:
        from moodwire.retention import parse_keep

        try:
            parse_keep(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a duration like 30d, or forever") from None
        return value

    @field_validator("store_keep_windows")
    @classmethod
    def _check_window_keeps(cls, value: str) -> str:
        from moodwire.retention import parse_window_keeps

        parse_window_keeps(value)
        return value

    @field_validator("aggregate_lateness", "aggregate_idle", "aggregate_future_tolerance", "health_broker_timeout",
                     "health_stall", "dashboard_session_idle", "dashboard_session_lifetime")
    @classmethod
    def _check_span(cls, value: str) -> str:
        parse_span(value)
        return value

    @field_validator("dashboard_origin")
    @classmethod
    def _check_origin(cls, value: str | None) -> str | None:
        from urllib.parse import urlparse

        if value is None:
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc or parsed.path.strip("/"):
            raise ValueError("expected an origin such as https://moodwire.example.com (scheme and host, no path)")
        return value.rstrip("/")

    @field_validator("aggregate_store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if value not in ("memory://", "rocksdb://"):
            raise ValueError("expected memory:// or rocksdb://")
        return value

    @property
    def store(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'moodwire.db'}"

    @property
    def engine_options(self) -> dict:
        """Keyword arguments of ``models.serving.engine.InferenceEngine`` (besides the model)."""
        return {"device": self.device, "int8": self.int8, "runtime": self.cpu_runtime,
                "cache_dir": self.onnx_cache or self.home / "onnx"}

    # The parsed forms of the span settings: every entry point reads these, never the text.
    @cached_property
    def windows(self) -> list[WindowSpec]:
        """``aggregate_windows`` parsed: the window specifications, in the order given."""
        return parse_windows(self.aggregate_windows)

    @cached_property
    def lateness(self) -> timedelta:
        """``aggregate_lateness`` parsed."""
        return parse_span(self.aggregate_lateness)

    @cached_property
    def retention(self) -> "Retention":
        """The ``store_keep_*`` settings parsed."""
        from moodwire.retention import Retention, parse_keep, parse_window_keeps

        return Retention(parse_keep(self.store_keep_items), parse_window_keeps(self.store_keep_windows),
                         parse_keep(self.store_keep_alerts), parse_keep(self.store_keep_deliveries))

    @cached_property
    def health_spans(self) -> tuple[timedelta, timedelta]:
        """``health_broker_timeout`` and ``health_stall`` parsed."""
        return parse_span(self.health_broker_timeout), parse_span(self.health_stall)

    @cached_property
    def future_tolerance(self) -> timedelta:
        """``aggregate_future_tolerance`` parsed."""
        return parse_span(self.aggregate_future_tolerance)

    @cached_property
    def session_spans(self) -> tuple[timedelta, timedelta]:
        """``dashboard_session_idle`` and ``dashboard_session_lifetime`` parsed."""
        return parse_span(self.dashboard_session_idle), parse_span(self.dashboard_session_lifetime)

    @cached_property
    def idle(self) -> timedelta:
        """``aggregate_idle`` parsed."""
        return parse_span(self.aggregate_idle)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: str | Path | None = None, environ: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Read the settings once: YAML file, then environment, then explicit overrides."""
    environ = dict(os.environ if environ is None else environ)
    config_file = config_file or environ.pop(f"{ENV_PREFIX}CONFIG", None)
    values: dict[str, Any] = {}
    origin: dict[str, str] = {}
    if config_file:
        settings_file = read_mapping(config_file, "settings file", SettingsError,
                                     " (from MOODWIRE_CONFIG or --config)")
        for key, value in settings_file.items():
            values[str(key)] = value
            origin[str(key)] = f"{key!r} in {config_file}"
    known = set(Settings.model_fields)
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name not in NOT_SETTINGS:
            key = name[len(ENV_PREFIX):].lower()
            if key not in known:
                raise SettingsError(f"unknown setting {name}; known settings: "
                                    + ", ".join(ENV_PREFIX + k.upper() for k in sorted(known)))
            values[key] = value
            origin[key] = name
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in overrides:
        origin.setdefault(key, f"option --{key.replace('_', '-')}")
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else "?"
            where = origin.get(key, f"{ENV_PREFIX}{key.upper()}")
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown setting {where}")
            else:
                problems.append(f"{where}={err.get('input')!r}: {err['msg']}")
        raise SettingsError("invalid settings: " + "; ".join(problems)) from None
