from __future__ import annotations

from pathlib import Path

import pytest

from moodwire.errors import SettingsError
from moodwire.settings import load_settings


def test_defaults_run_on_one_machine():
    s = load_settings(environ={})
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.kafka_partitions == 4
    assert s.store == "sqlite:///var/moodwire.db"
    assert s.model is None and s.alert_rules is None


def test_environment_overrides_yaml_which_overrides_defaults(tmp_path: Path):
    cfg = tmp_path / "moodwire.yaml"
    cfg.write_text("kafka_partitions: 8\nkafka_bootstrap: yaml-host:9093\nlog_level: debug\n")
    s = load_settings(environ={"MOODWIRE_CONFIG": str(cfg), "MOODWIRE_KAFKA_BOOTSTRAP": "env-host:9094"})
    assert s.kafka_partitions == 8
    assert s.kafka_bootstrap == "env-host:9094"
    assert s.log_level == "DEBUG"


def test_store_url_and_model_from_environment():
    s = load_settings(environ={"MOODWIRE_STORE_URL": "postgresql+psycopg://u@h/db", "MOODWIRE_MODEL": "/m"})
    assert s.store == "postgresql+psycopg://u@h/db"
    assert s.model == "/m"


@pytest.mark.parametrize("name, value, fragment", [
    ("MOODWIRE_KAFKA_PARTITIONS", "many", "MOODWIRE_KAFKA_PARTITIONS='many'"),
    ("MOODWIRE_KAFKA_PARTITIONS", "0", "greater than or equal to 1"),
    ("MOODWIRE_KAFKA_BOOTSTRAP", "localhost", "'localhost' is not host:port"),
    ("MOODWIRE_KAFKA_BOOTSTRAP", "h:99999", "is not host:port"),
    ("MOODWIRE_LOG_LEVEL", "LOUD", "MOODWIRE_LOG_LEVEL='LOUD'"),
    ("MOODWIRE_DASHBOARD_SIGNIN_LIMIT", "0/minute", "MOODWIRE_DASHBOARD_SIGNIN_LIMIT='0/minute'"),
    ("MOODWIRE_DASHBOARD_SIGNIN_USER_LIMIT", "20/minute;0/hour", "a limit of 0 refuses every sign-in"),
    ("MOODWIRE_AGGREGATE_FUTURE_TOLERANCE", "soon", "MOODWIRE_AGGREGATE_FUTURE_TOLERANCE='soon'"),
])
def test_bad_environment_value_names_key_and_value(name, value, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(environ={name: value})
    assert fragment in str(err.value)


def test_unknown_environment_setting_is_refused_with_the_known_ones():
    with pytest.raises(SettingsError, match="unknown setting MOODWIRE_KAFKA_BOOTSTRAPS.*MOODWIRE_KAFKA_BOOTSTRAP"):
        load_settings(environ={"MOODWIRE_KAFKA_BOOTSTRAPS": "h:1"})


def test_the_setup_scripts_variable_is_not_taken_for_a_setting():
    assert load_settings(environ={"MOODWIRE_VENV": "/opt/venv"}).kafka_bootstrap == "127.0.0.1:9092"


def test_bad_yaml_key_names_the_file(tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("kafka_partitons: 3\n")
    with pytest.raises(SettingsError, match=r"unknown setting 'kafka_partitons' in .*bad.yaml"):
        load_settings(cfg, environ={})


def test_yaml_value_error_names_file_and_key(tmp_path: Path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("max_batch: -3\n")
    with pytest.raises(SettingsError, match=r"'max_batch' in .*bad.yaml=-3"):
        load_settings(cfg, environ={})


@pytest.mark.parametrize("content, fragment", [
    ("kafka: [unclosed", "not valid YAML"),
    ("- a\n- b\n", "must hold a mapping of key: value, not a list"),
])
def test_malformed_yaml_file(tmp_path: Path, content, fragment):
    cfg = tmp_path / "m.yaml"
    cfg.write_text(content)
    with pytest.raises(SettingsError, match=fragment):
        load_settings(cfg, environ={})


def test_missing_settings_file():
    with pytest.raises(SettingsError, match="settings file /nonexistent.yaml does not exist"):
        load_settings("/nonexistent.yaml", environ={})


def test_settings_are_frozen():
    s = load_settings(environ={})
    with pytest.raises(Exception):
        s.kafka_partitions = 9  # type: ignore[misc]
