"""The `intake` command: help and docs for every command and setting, exit codes, and what each
command prints or writes, run against settings in a temp folder."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from intake import demo
from intake.cli import cli
from intake.config import SECTIONS, Settings
from intake.export import COLUMNS
from tests.pipeline_fixtures import (
    CONSULTATION,
    REPO,
    RULES,
    SettingsFactory,
    deliver,
    engine,
    mail,
    make_settings,
    poll,
    settings,
)

__all__ = ["engine", "make_settings", "settings"]  # fixtures used by the tests below

README = (REPO / "README.md").read_text(encoding="utf-8")
SHIPPED_CONFIG = (REPO / "config" / "intake.toml").read_text(encoding="utf-8")
JANUARY = datetime(2019, 1, 28, 10, 0, tzinfo=UTC)


def commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the click group: ("poll",), ("rules", "check"), …"""
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


COMMANDS = list(commands())


def run(settings: Settings, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--config", settings.source_file, *args], catch_exceptions=False
    )


# -- help and documentation --------------------------------------------------------------------


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_that_exits_0(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_is_documented_in_the_readme(path: tuple[str, ...]) -> None:
    assert f"intake {' '.join(path)}" in README, (
        f"README.md does not mention `intake {' '.join(path)}`"
    )


KEYS = [(section, key) for section, model in SECTIONS.items() for key in model.model_fields]


@pytest.mark.parametrize("key", KEYS, ids=".".join)
def test_every_setting_is_in_the_readme_table_and_the_shipped_config(key: tuple[str, str]) -> None:
    section, name = key
    assert f"| `{section}.{name}` |" in README
    # The shipped file has each key in its section, set or commented out with its default.
    body = re.split(r"^\[", SHIPPED_CONFIG, flags=re.MULTILINE)
    table = next(part for part in body if part.startswith(f"{section}]"))
    assert re.search(rf"^#?\s*{name}\s*=", table, flags=re.MULTILINE), f"[{section}] {name}"


# -- exit codes --------------------------------------------------------------------------------


def test_bad_setting_exits_2_naming_the_file_line_and_key(tmp_path: Path) -> None:
    config = tmp_path / "intake.toml"
    config.write_text('[mailbox]\nurl = "maildir:mail"\nbatch_size = "lots"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 2
    assert f"{config}:3" in result.output
    assert "mailbox.batch_size" in result.output


def test_rules_check_exits_2_for_a_bad_rules_file(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "bad-rules.toml"
    rules.write_text(RULES.read_text(encoding="utf-8") + "\n[[rules]]\nid = 'Not Kebab'\n")
    settings = make_settings(consultation={"rules": str(rules)})
    result = run(settings, "rules", "check")
    assert result.exit_code == 2
    assert str(rules) in result.output


def test_rules_check_passes_the_shipped_rules(settings: Settings) -> None:
    result = run(settings, "rules", "check")
    assert result.exit_code == 0
    assert "ok" in result.output


# -- commands on a stored mailbox --------------------------------------------------------------


@pytest.fixture
def stored(settings: Settings, engine: object) -> Settings:
    """Three messages polled into the temp intake: a suggestion, one whose subject is a
    formula, and a corpus mail."""
    deliver(settings, mail(), JANUARY)
    deliver(settings, mail(subject='=HYPERLINK("http://x.example")', sender="e@x.nl"), JANUARY)
    deliver(settings, (CONSULTATION / "nl-council-cameras-stratumseind.eml").read_bytes(), JANUARY)
    poll(settings, engine)  # type: ignore[arg-type]
    return settings


def test_show_raw_gives_back_the_original_bytes(stored: Settings) -> None:
    original = (CONSULTATION / "nl-council-cameras-stratumseind.eml").read_bytes()
    for ref in ("1", "2", "3"):
        result = run(stored, "show", ref, "--raw")
        assert result.exit_code == 0
        if result.stdout_bytes == original:
            break
    else:
        pytest.fail("no stored message came back byte for byte")


def test_show_without_raw_explains_the_message(stored: Settings) -> None:
    result = run(stored, "show", "1")
    assert result.exit_code == 0
    assert "kind:" in result.output
    assert "Message-ID:" in result.output


def test_show_of_an_unknown_message_exits_1(stored: Settings) -> None:
    result = run(stored, "show", "999")
    assert result.exit_code == 1
    assert "999" in result.output


def test_csv_export_has_the_documented_columns_and_no_formulas(stored: Settings) -> None:
    result = run(stored, "export", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == COLUMNS
    for column in COLUMNS:
        assert f"`{column}`" in README  # documented
    assert len(rows) == 3
    subjects = [row["subject"] for row in rows]
    assert '\'=HYPERLINK("http://x.example")' in subjects
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@")), value


def test_jsonl_export_has_every_documented_field_and_times_with_offsets(
    stored: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "export.jsonl"
    result = run(stored, "export", "--output", str(out))
    assert result.exit_code == 0
    assert "wrote 3 messages" in result.output
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    for row in rows:
        assert set(COLUMNS) <= set(row)
        received = datetime.fromisoformat(row["received_at"])
        assert received.utcoffset() is not None
        assert re.search(r"[+-]\d\d:\d\d$", row["received_at"])
    assert {row["kind"] for row in rows} == {"suggestion"}


def test_rules_explain_of_an_eml_file_prints_kind_themes_and_rule_ids(settings: Settings) -> None:
    path = CONSULTATION / "nl-council-cameras-stratumseind.eml"
    result = run(settings, "rules", "explain", str(path))
    assert result.exit_code == 0
    assert "kind: suggestion" in result.output
    assert re.search(r"^theme \S+ \(primary", result.output, flags=re.MULTILINE)
    assert re.search(r"rule [a-z0-9-]+ \(weight", result.output)


def test_rules_explain_of_a_stored_message(stored: Settings) -> None:
    result = run(stored, "rules", "explain", "1")
    assert result.exit_code == 0
    assert "stored as suggestion" in result.output


def test_status_prints_counts_and_the_mailbox_position(stored: Settings) -> None:
    result = run(stored, "status")
    assert result.exit_code == 0
    assert re.search(r"messages:\s+3", result.output)
    assert re.search(r"suggestion\s+3", result.output)
    assert "last good poll" in result.output


def test_poll_prints_a_summary_and_sends_the_acknowledgements(settings: Settings) -> None:
    deliver(settings, mail(), JANUARY)
    result = run(settings, "poll")
    assert result.exit_code == 0
    assert "fetched 1, stored 1" in result.output
    assert "outbox: sent 1" in result.output
    assert list(Path(settings.outgoing.url.removeprefix("file:")).glob("*.eml"))
    assert "fetched 0, stored 0" in run(settings, "poll").output


def test_demo_delivers_and_lists_the_sample_messages(settings: Settings) -> None:
    samples = sorted(demo.SAMPLES.glob("*.eml"))
    if not samples or not (demo.SAMPLES / "arrivals.toml").exists():
        pytest.skip("intake/samples has no sample mail yet")
    result = run(settings, "demo")
    assert result.exit_code == 0, result.output
    assert f"delivered {len(samples)} sample messages" in result.output
    listed = [line for line in result.output.splitlines() if re.match(r"^\s+\d+\s+\d{4}-", line)]
    assert len(listed) == len(samples)
    again = run(settings, "demo")
    assert "delivered 0 sample messages" in again.output


# -- nothing in the checkout -------------------------------------------------------------------


def _status() -> set[str]:
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--ignored"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.splitlines())


def test_commands_with_a_config_elsewhere_write_nothing_into_the_checkout(
    make_settings: SettingsFactory,
) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    # Relative paths, as an admin writes them: they are taken from the config file's folder.
    settings = make_settings(consultation={"rules": str(RULES)})
    deliver(settings, mail(), JANUARY)
    before = _status()
    intake = [sys.executable, "-m", "intake", "--config", settings.source_file]
    for args in (["poll"], ["status"], ["export", "--format", "csv"], ["db", "upgrade"]):
        done = subprocess.run([*intake, *args], cwd=REPO, capture_output=True, check=False)
        assert done.returncode == 0, done.stderr.decode()
    # Others may edit sources meanwhile; intake itself would write a database, mail or outbox.
    written = [
        line
        for line in _status() - before
        if re.search(r"(\.db|\.db-wal|\.db-shm|outbox/|mail/(new|cur|tmp)/|var/)", line)
    ]
    assert written == []
    assert (Path(settings.source_file).parent / "intake.db").exists()
