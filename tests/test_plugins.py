"""Plugin discovery: autoopt's built-ins, then the `autoopt` entry-point group, with real
distributions on sys.path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from autoopt.errors import PluginError
from autoopt.plugins import hookimpl, load_plugins
from autoopt.plugins.manager import DEFAULT_PLUGINS


def _write_dist(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]) -> None:
    """Lay out an installed distribution (dist-info + modules) the way pip would."""
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    lines = ["[autoopt]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))


@pytest.fixture
def third_party(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    _write_dist(
        tmp_path,
        "autoopt-thirdparty",
        {"good": "good_plugin", "broken": "broken_plugin"},
        {
            "good_plugin": """
                from autoopt.plugins import hookimpl

                class ConstantTrainer:
                    name = "constant"
                    def tune(self, task):
                        return 0.5
                    def load(self, files, manifest):
                        return None

                @hookimpl
                def autoopt_register_trainers():
                    return [ConstantTrainer()]
            """,
            "broken_plugin": """
                import a_module_that_does_not_exist_anywhere
            """,
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtin_plugins_register_through_the_plugin_hooks() -> None:
    plugins = load_plugins()
    names = {info.name for info in plugins.info()}
    assert "builtin-sources" in names
    info = next(i for i in plugins.info() if i.name == "builtin-sources")
    assert info.source == "autoopt (autoopt.builtins.sources)"
    assert "autoopt_register_data_sources" in info.hooks
    assert {"file", "bundled"} <= set(plugins.components("data_source"))


def test_third_party_plugin_loads_and_broken_one_is_reported(third_party: Path) -> None:
    plugins = load_plugins()
    assert plugins.trainer("constant").tune(None) == 0.5
    good = next(i for i in plugins.info() if i.name == "good")
    assert good.version == "1.2.3"
    assert "autoopt-thirdparty" in good.source
    [failure] = [f for f in plugins.failures if f.name == "broken"]
    assert "a_module_that_does_not_exist_anywhere" in failure.error
    assert "broken" in str(failure.as_error())
    # the other plugins still loaded
    assert "builtin-sources" in {i.name for i in plugins.info()}


def test_disabled_plugin_is_not_loaded(third_party: Path) -> None:
    plugins = load_plugins(disabled=["good", "broken"])
    assert not plugins.failures
    with pytest.raises(PluginError, match="no trainer named 'constant'"):
        plugins.trainer("constant")


def test_unknown_component_error_lists_available_and_failures(third_party: Path) -> None:
    plugins = load_plugins()
    with pytest.raises(PluginError) as err:
        plugins.trainer("xgboost")
    assert "constant" in str(err.value)
    assert "broken" in str(err.value)


def test_duplicate_component_names_are_refused() -> None:
    class Source:
        name = "file"
        scheme = "file2"

        def load(self, uri, symbols=None):
            return {}

    class Dup:
        @hookimpl
        def autoopt_register_data_sources(self):
            return [Source()]

    plugins = load_plugins(extra=[("dup", Dup())])
    with pytest.raises(PluginError, match="registered twice"):
        plugins.components("data_source")


def test_data_source_lookup_by_scheme() -> None:
    plugins = load_plugins()
    assert plugins.data_source_for("bundled:GOOG").name == "bundled"
    with pytest.raises(PluginError, match="no data source for scheme 'ftp'"):
        plugins.data_source_for("ftp://example/bars.csv")


def test_plugin_cli_commands_load_only_when_asked_for(tmp_path: Path) -> None:
    """A plugin's `autoopt_cli_commands` adds a verb; built-in verbs never import plugins."""
    import os
    import subprocess
    import sys

    marker = tmp_path / "imported"
    _write_dist(
        tmp_path,
        "autoopt-hello",
        {"hello": "hello_plugin"},
        {
            "hello_plugin": f"""
                import pathlib
                import typer
                from autoopt.plugins import hookimpl

                pathlib.Path({str(marker)!r}).write_text("yes")

                def hello(name: str = typer.Option("world")) -> None:
                    \"\"\"Say hello.\"\"\"
                    print(f"hello {{name}}")

                @hookimpl
                def autoopt_cli_commands():
                    return [hello]
            """
        },
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "AUTOOPT_DATA_DIR": str(tmp_path / "d")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "autoopt.cli", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert cli("version").returncode == 0
    assert not marker.exists()
    out = cli("hello", "--name", "plugin")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "hello plugin"
    assert marker.exists()


def test_core_without_entry_points_has_every_builtin() -> None:
    """One `pip install autoopt` is a working core: the built-ins need no entry point."""
    plugins = load_plugins(entry_points=False)
    assert not plugins.failures
    assert {name for name, _ in DEFAULT_PLUGINS} == {i.name for i in plugins.info()}
    assert {"file", "bundled", "log", "ccxt"} <= set(plugins.components("data_source"))
    assert {"lgbm", "tft"} <= set(plugins.components("trainer"))
    assert "purged_cv" in plugins.components("validator")
    assert "stops-sizing" in plugins.components("risk_tuner")
    assert "default" in plugins.components("feature_set")
    assert plugins.trainer("lgbm").model_type == "lightgbm"


def test_builtin_can_be_disabled_and_an_old_builtins_entry_point_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an environment upgraded from the separate `autoopt-builtins` distribution still has its
    # entry points (with modules that no longer exist): the built-in of that name wins
    _write_dist(
        tmp_path, "autoopt-builtins", {"builtin-lgbm": "autoopt_builtins_gone.lgbm"}, {}
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = load_plugins()
    assert not plugins.failures
    assert plugins.trainer("lgbm").model_type == "lightgbm"

    plugins = load_plugins(disabled=["builtin-lgbm"])
    with pytest.raises(PluginError, match="no trainer named 'lgbm'"):
        plugins.trainer("lgbm")
