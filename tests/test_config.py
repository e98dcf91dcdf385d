"""Configuration: TOML + AUTOOPT_* environment, validated with messages naming the bad key."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoopt.config import default_data_dir, load_config
from autoopt.errors import ConfigError


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={"HOME": str(tmp_path)})
    assert config.pipeline.trials == 32
    assert config.policy.schedule == "0 3 * * *"
    assert config.embedded
    assert Path(config.data_dir) == tmp_path / ".local" / "share" / "autoopt"


def test_toml_then_environment_precedence(tmp_path: Path) -> None:
    file = tmp_path / "autoopt.toml"
    file.write_text(
        'data_dir = "/from/file"\n[pipeline]\ntrials = 8\nmodels = ["lgbm"]\n[pipeline.gate]\nmargin = 0.1\n'
    )
    env = {
        "AUTOOPT_PIPELINE__TRIALS": "64",
        "AUTOOPT_DATA_DIR": str(tmp_path / "d"),
        "AUTOOPT_NATS_URL": "nats://a:4222, nats://b:4222",
        "AUTOOPT_PIPELINE__MODELS": '["lgbm", "tft"]',
    }
    config = load_config(file, environ=env)
    assert config.pipeline.trials == 64
    assert config.pipeline.gate.margin == 0.1
    assert config.pipeline.models == ["lgbm", "tft"]
    assert config.data_dir == str(tmp_path / "d")
    assert config.nats.urls == ["nats://a:4222", "nats://b:4222"]
    assert not config.embedded


def test_unknown_key_in_file_is_named(tmp_path: Path) -> None:
    file = tmp_path / "bad.toml"
    file.write_text("[pipeline]\ntrialz = 3\n")
    with pytest.raises(ConfigError, match=r"pipeline.*trialz") as err:
        load_config(file, environ={})
    assert "bad.toml" in str(err.value)


def test_bad_value_from_environment_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ={"AUTOOPT_PIPELINE__TRIALS": "0", "AUTOOPT_DATA_DIR": str(tmp_path)})
    message = str(err.value)
    assert "pipeline.trials" in message
    assert "AUTOOPT_PIPELINE__TRIALS" in message


def test_wrong_type_is_named(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[policy]\ncooldown_s = "soon"\n')
    with pytest.raises(ConfigError, match="policy.cooldown_s"):
        load_config(file, environ={})


def test_bad_cron_expression_is_named(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[policy.symbols.BTCUSDT]\nschedule = "every night"\n')
    with pytest.raises(ConfigError, match=r"policy\.symbols\.BTCUSDT\.schedule"):
        load_config(file, environ={})


def test_missing_file_and_invalid_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})
    bad = tmp_path / "x.toml"
    bad.write_text("[pipeline\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_data_dirs_are_distinct_per_override(tmp_path: Path) -> None:
    a = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path / "a")})
    b = load_config(environ={"AUTOOPT_DATA_DIR": str(tmp_path / "b")})
    assert a.data_dir != b.data_dir
    assert default_data_dir({"XDG_DATA_HOME": "/x"}) == Path("/x/autoopt")


def test_example_config_is_complete_and_current() -> None:
    """docker/autoopt.example.toml lists every key with its default; regenerate it with
    `autoopt config --toml > docker/autoopt.example.toml` when the config changes."""
    from autoopt.config import Config, to_toml

    example = Path(__file__).parent.parent / "docker" / "autoopt.example.toml"
    loaded = load_config(example, environ={})
    assert loaded == Config(data_dir="/data")
    assert to_toml(loaded) in example.read_text()


def test_schedules_can_be_turned_off_globally_and_per_symbol(tmp_path: Path) -> None:
    file = tmp_path / "c.toml"
    file.write_text('[policy]\nschedule = "off"\n[policy.symbols.BTCUSDT]\nschedule = "never"\n')
    config = load_config(file, environ={})
    assert config.policy.schedule is None
    assert config.policy.symbols["BTCUSDT"].schedule == "never"
