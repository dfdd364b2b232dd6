"""A service's own settings (issue 12): declared once as a dataclass, read from
``[services.<name>]`` in cityos.toml and ``CITYOS_<NAME>_<FIELD>``, checked against the
declaration, and documented in docs/configuration.md from the same declaration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cityos.config import Settings
from cityos.plug import Service
from cityos.services.settings import markdown, settings_of


@dataclass
class PumpSettings:
    station: str = field(default="", metadata={"help": "the pumping station it runs"})
    rounds: int = field(default=3, metadata={"help": "rounds per hour"})
    limits: list[str] = field(default_factory=list, metadata={"help": "level=metres | …"})


PUMP = Service(name="pump", settings=PumpSettings)


def _load(tmp_path: Path, toml: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "cityos.toml"
    path.write_text(toml)
    return Settings.load(env=env or {}, path=str(path))


def test_defaults_then_the_file_then_the_environment(tmp_path: Path) -> None:
    assert settings_of(PUMP, Settings.load(env={})) == PumpSettings()
    core = _load(tmp_path, '[services.pump]\nstation = "Chbar Ampov"\nrounds = 4\n')
    assert settings_of(PUMP, core) == PumpSettings(station="Chbar Ampov", rounds=4)
    core = _load(
        tmp_path,
        '[services.pump]\nstation = "Chbar Ampov"\nrounds = 4\n',
        {"CITYOS_PUMP_ROUNDS": "6", "CITYOS_PUMP_LIMITS": "high=3.5, low=0.4"},
    )
    assert settings_of(PUMP, core) == PumpSettings(
        station="Chbar Ampov", rounds=6, limits=["high=3.5", "low=0.4"]
    )


def test_a_core_setting_beside_a_service_table_still_loads(tmp_path: Path) -> None:
    core = _load(tmp_path, "port = 1030\n[services.pump]\nrounds = 2\n")
    assert core.port == 1030 and settings_of(PUMP, core).rounds == 2


@pytest.mark.parametrize(
    "toml, env, message",
    [
        ("[services.pump]\nrunds = 2\n", {}, "unknown setting(s) in [services.pump]: runds"),
        ("", {"CITYOS_PUMP_ROUNDS": "many"}, "setting pump.rounds: 'many' is not a valid int"),
        ('[services.pump]\nrounds = "x"\n', {}, "setting pump.rounds: 'x' is not a valid int"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_it(
    tmp_path: Path, toml: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError) as caught:
        settings_of(PUMP, _load(tmp_path, toml, env))
    assert str(caught.value) == message


def test_a_table_for_a_service_without_settings_is_refused(tmp_path: Path) -> None:
    core = _load(tmp_path, "[services.bare]\nx = 1\n")
    with pytest.raises(ValueError, match=r"services\.bare: the service declares no settings"):
        settings_of(Service(name="bare"), core)
    assert settings_of(Service(name="bare"), Settings.load(env={})) is None


def test_services_must_hold_tables(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\[services\.<name>\]"):
        _load(tmp_path, 'services = "pump"\n')


def test_the_docs_come_from_the_declaration() -> None:
    text = markdown((PUMP, Service(name="bare")))
    assert "### `pump`" in text and "bare" not in text
    assert (
        "| `services.pump.rounds` | `CITYOS_PUMP_ROUNDS` | `int` | `3` | rounds per hour |" in text
    )
    assert "| `services.pump.limits` | `CITYOS_PUMP_LIMITS` | `list[str]` | (none) |" in text
    assert "level=metres \\| …" in text  # a | in the help does not break the table


def test_docs_configuration_lists_every_registered_services_settings() -> None:
    """docs/configuration.md holds what ``cityos services --settings`` prints."""
    from typer.testing import CliRunner

    from cityos.cli import app

    table = CliRunner().invoke(app, ["services", "--settings"]).output
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    assert doc[doc.index(begin) + len(begin) : doc.index(end)] == table


def test_serve_with_a_wrong_service_setting_is_one_line(tmp_path: Path) -> None:
    """`cityos serve` refuses a service's wrong setting before it starts: one line naming
    it, exit 2 (it once ended in a traceback from inside the app factory)."""
    import os
    import subprocess
    import sys

    (tmp_path / "cityos.toml").write_text('[services.traffic]\nsignalz = "x"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    env["CITYOS_DATABASE_URL"] = f"sqlite:///{tmp_path}/h.db"
    proc = subprocess.run(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "configuration error: unknown setting(s) in [services.traffic]: signalz"
    )


def test_doctor_shows_a_bracketed_name_as_written(tmp_path: Path, monkeypatch) -> None:
    """Rich markup must not eat ``[services.traffic]`` out of a check's detail."""
    from typer.testing import CliRunner

    from cityos.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cityos.toml").write_text('[services.traffic]\nsignalz = "x"\n')
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert "unknown setting(s) in [services.traffic]: signalz" in result.output


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("CITYOS_CONTEXT_MIRRORS", "bogus", "setting context_mirrors: 'bogus' is not"),
        ("CITYOS_NOTIFY_ALLOW_PRIVATE", "maybe", "setting notify_allow_private: 'maybe'"),
    ],
)
def test_serve_with_a_wrong_formatted_setting_is_one_line(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    """Settings with a format of their own are checked as they load: one line, exit 2
    (they once ended in a traceback as the hub started)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYOS_")}
    env |= {"CITYOS_DATABASE_URL": f"sqlite:///{tmp_path}/h.db", name: value}
    proc = subprocess.run(
        [sys.executable, "-m", "cityos.cli", "serve", "--port", "1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("configuration error: " + says), proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 2
