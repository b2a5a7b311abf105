"""Configuration: every setting documented, and every mistake in it an error naming the key.

A misspelt key or ``PZVO_*`` variable used to be ignored (the default silently won), and a value
that did not parse was a traceback from ``int()``. No database needed.
"""
from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vo_service.core.settings import NOT_SETTINGS, Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ``PZVO_*`` variable of the caller (the suite's own, a developer's shell) and an empty
    TOML file; returns that file for the test to fill."""
    import os

    for name in [n for n in os.environ if n.startswith("PZVO_")]:
        monkeypatch.delenv(name)
    cfg = tmp_path / "pzvo.toml"
    cfg.write_text("")
    monkeypatch.setenv("PZVO_CONFIG", str(cfg))
    return cfg


def _doc_tables() -> list[list[list[str]]]:
    """The tables of the Configuration section of docs/operations.md, as rows of cells."""
    text = OPERATIONS.read_text()
    section = text[text.index("\n## Configuration\n"):]
    section = section[:section.find("\n## ", 1)]
    tables: list[list[list[str]]] = []
    previous = ""
    for line in section.splitlines():
        if line.startswith("|"):
            if not previous.startswith("|"):
                tables.append([])
            if not re.fullmatch(r"\|(-+\|)+", line):
                tables[-1].append([c.strip() for c in line.strip("|").split("|")])
        previous = line
    return tables


def _doc_table(header: list[str]) -> list[list[str]]:
    found = [t[1:] for t in _doc_tables() if t[0] == header]
    assert len(found) == 1, f"docs/operations.md needs one table headed {header}"
    return found[0]


def _unquote(cell: str) -> str:
    return cell.strip("`")


def test_every_setting_is_documented_with_its_variable_default_and_meaning() -> None:
    rows = _doc_table(["setting", "environment variable", "default", "meaning"])
    documented = [_unquote(r[0]) for r in rows]
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    assert set(documented) == set(FIELDS), (
        f"undocumented: {sorted(set(FIELDS) - set(documented))}; "
        f"documented but no such setting: {sorted(set(documented) - set(FIELDS))}")
    for name, env, default, meaning in rows:
        name = _unquote(name)
        assert _unquote(env) == f"PZVO_{name.upper()}", name
        assert default and meaning, f"{name}: default and meaning must both be given"
        value = FIELDS[name].default
        if isinstance(value, bool):
            assert default.split()[0] == str(value).lower(), name
        elif isinstance(value, (int, float)):
            assert float(default.split()[0]) == value, f"{name}: the code's default is {value}"


def test_the_variables_that_are_not_settings_are_documented() -> None:
    rows = _doc_table(["variable", "why"])
    assert sorted(_unquote(r[0]) for r in rows) == sorted(NOT_SETTINGS)
    assert all(r[1] for r in rows)
    assert all(reason for reason in NOT_SETTINGS.values())


def test_every_pzvo_variable_in_the_project_is_a_setting_or_allow_listed() -> None:
    """A new ``PZVO_*`` variable read by a script (or set by a test) must be either a setting
    or added to ``NOT_SETTINGS``, or it makes every ``pzvo`` command fail."""
    known = {f"PZVO_{n.upper()}" for n in FIELDS} | set(NOT_SETTINGS)
    files = [ROOT / "Makefile", ROOT / "README.md"]
    for folder in ("vo_service", "tests", "benchmarks", "scripts", "ingest", "pipeline",
                   "migrations", "docs"):
        files += [p for p in (ROOT / folder).rglob("*")
                  if p.suffix in (".py", ".sh", ".md", ".toml", ".yaml") and p.is_file()]
    seen: dict[str, str] = {}
    for path in files:
        for name in re.findall(r"PZVO_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")):
            if path != Path(__file__):  # misspells on purpose
                seen.setdefault(name, str(path.relative_to(ROOT)))
    assert {n: p for n, p in seen.items() if n not in known} == {}


def test_a_correct_toml_file_is_read_with_each_type(clean_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text('maxrec_default = 1234\nquery_timeout_s = 90\npublic_read = true\n'
                         'var_dir = "/srv/pzvo"\ndb_name = "elsewhere"\nlog_level = "debug"\n')
    settings = load_settings()
    assert settings.maxrec_default == 1234
    assert settings.query_timeout_s == 90.0 and isinstance(settings.query_timeout_s, float)
    assert settings.public_read is True
    assert settings.var_dir == Path("/srv/pzvo")
    assert settings.db_name == "elsewhere"
    assert settings.log_level == "DEBUG"
    monkeypatch.setenv("PZVO_MAXREC_DEFAULT", "99")
    monkeypatch.setenv("PZVO_PUBLIC_READ", "")  # empty: unset, the file's value stands
    assert load_settings().maxrec_default == 99 and load_settings().public_read is True
    assert load_settings(maxrec_default=7).maxrec_default == 7


def test_unknown_toml_key_is_an_error_naming_it(clean_env: Path) -> None:
    clean_env.write_text("maxrec_defualt = 5\nmaxrec_limit = 10\ncompletely_made_up = 1\n")
    with pytest.raises(SettingsError) as err:
        load_settings()
    message = str(err.value)
    assert "'maxrec_defualt'" in message and "did you mean maxrec_default?" in message
    assert "'completely_made_up'" in message and str(clean_env) in message
    assert "\n" not in message


def test_unknown_environment_variable_is_an_error_naming_it(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PZVO_POOL_SIZ", "3")
    with pytest.raises(SettingsError, match=r"PZVO_POOL_SIZ \(did you mean PZVO_POOL_SIZE\?\)"):
        load_settings()
    monkeypatch.setenv("PZVO_POOL_SIZ", "")  # set but empty is still a misspelt name
    with pytest.raises(SettingsError, match="PZVO_POOL_SIZ"):
        load_settings()


def test_unknown_override_is_an_error(clean_env: Path) -> None:
    with pytest.raises(SettingsError, match="'maxrec' passed to load_settings"):
        load_settings(maxrec=5)


def test_allow_listed_variables_are_accepted(clean_env: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NOT_SETTINGS:
        if name != "PZVO_CONFIG":
            monkeypatch.setenv(name, "1" if name == "PZVO_BEHIND_FRONT" else "something")
    # and the ones the suite and `pzvo serve` set for their child processes
    for name, value in {"PZVO_DB_NAME": "pzvo_test", "PZVO_PUBLIC_READ": "true",
                        "PZVO_MAXREC_LIMIT": "2000000", "PZVO_LOG_LEVEL": "WARNING",
                        "PZVO_UWS_HEARTBEAT_S": "0.3", "PZVO_WEB_THREADS": "4",
                        "PZVO_VAR_DIR": "/tmp/var"}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.maxrec_limit, settings.uws_heartbeat_s) == (2_000_000, 0.3)


@pytest.mark.parametrize("name, value", [
    ("PZVO_POOL_SIZE", "abc"), ("PZVO_POOL_SIZE", "2.5"), ("PZVO_QUERY_TIMEOUT_S", "soon"),
    ("PZVO_PUBLIC_READ", "maybe"), ("PZVO_FRONT", "apache"), ("PZVO_LOG_LEVEL", "LOUD"),
])
def test_unparsable_environment_value_is_an_error_naming_key_and_value(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(f"{name}={value!r}")):
        load_settings()


@pytest.mark.parametrize("line, shown", [
    ('pool_size = "abc"', "pool_size = 'abc'"), ("pool_size = 2.5", "pool_size = 2.5"),
    ("pool_size = true", "pool_size = True"), ("public_read = 1", "public_read = 1"),
    ("db_name = 5", "db_name = 5"),
])
def test_unparsable_toml_value_is_an_error_naming_key_and_value(clean_env: Path, line: str,
                                                                shown: str) -> None:
    clean_env.write_text(line + "\n")
    with pytest.raises(SettingsError, match=re.escape(shown)):
        load_settings()


def test_every_setting_can_be_set_from_the_environment(clean_env: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Each field's type is one load_settings can parse (a new type needs a parser)."""
    for name, f in FIELDS.items():
        value = f.default if f.default is not None else "postgresql://u@h/d"
        monkeypatch.setenv(f"PZVO_{name.upper()}", str(value).lower() if isinstance(value, bool)
                           else str(value))
    settings = load_settings()
    for name, f in FIELDS.items():
        assert getattr(settings, name) == (f.default if f.default is not None
                                           else "postgresql://u@h/d"), name


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("true", True), ("YES", True), ("on", True),
    ("0", False), ("False", False), ("no", False), ("OFF", False),
])
def test_boolean_spellings(clean_env: Path, monkeypatch: pytest.MonkeyPatch, value: str,
                           expected: bool) -> None:
    monkeypatch.setenv("PZVO_TRUST_PROXY_HEADER", value)
    assert load_settings().trust_proxy_header is expected


def test_broken_or_missing_config_file_is_an_error(clean_env: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text("pool_size = \n")
    with pytest.raises(SettingsError, match=f"cannot read {re.escape(str(clean_env))}"):
        load_settings()
    monkeypatch.setenv("PZVO_CONFIG", str(clean_env.parent / "missing.toml"))
    with pytest.raises(SettingsError, match="missing.toml, which is not a file"):
        load_settings()


def test_every_problem_is_reported_at_once(clean_env: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text("pool_sise = 3\n")
    monkeypatch.setenv("PZVO_MAXREC_LIMIT", "lots")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert "pool_sise" in str(err.value) and "PZVO_MAXREC_LIMIT='lots'" in str(err.value)


def test_cli_prints_one_line_and_exits_2(clean_env: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from vo_service.cli import main

    monkeypatch.setenv("PZVO_POOL_SIZE", "abc")
    assert main(["db", "url"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "pzvo: configuration error: PZVO_POOL_SIZE='abc': not an integer\n"


def test_wsgi_entry_point_fails_with_one_clear_line(clean_env: Path) -> None:
    """Outside gunicorn (waitress, a plain import) the WSGI module exits with the line."""
    import os

    env = dict(os.environ, PZVO_MAXREC_LIMT="5")
    done = subprocess.run([sys.executable, "-c", "import vo_service.wsgi"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "pzvo: configuration error: unknown environment variable PZVO_MAXREC_LIMT "
        "(did you mean PZVO_MAXREC_LIMIT?)")


def test_gunicorn_stops_at_once_on_a_configuration_error(clean_env: Path) -> None:
    """gunicorn halts ("App failed to load") instead of restarting the worker forever."""
    import os

    env = dict(os.environ, PZVO_PUBLIC_READ="maybe")
    gunicorn = Path(sys.executable).parent / "gunicorn"
    # no control socket: its default path is shared with every other gunicorn of this user
    done = subprocess.run([str(gunicorn), "vo_service.wsgi:app", "--bind", "127.0.0.1:0",
                           "--workers", "1", "--no-control-socket"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 4  # gunicorn's APP_LOAD_ERROR
    assert "pzvo: configuration error: PZVO_PUBLIC_READ='maybe': not a boolean" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_object_key_column_must_be_a_regular_adql_identifier(
        clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PZVO_OBJECT_KEY_COLUMN", "object_id")
    assert load_settings().object_key_column == "object_id"
    for bad in ("object id", "1objectId", '"objectId"'):
        monkeypatch.setenv("PZVO_OBJECT_KEY_COLUMN", bad)
        with pytest.raises(SettingsError, match="PZVO_OBJECT_KEY_COLUMN.*regular ADQL identifier"):
            load_settings()
