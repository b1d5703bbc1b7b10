"""Settings: file, env overrides, secrets, and errors that name file, key and line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from intake.config import load_settings
from intake.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "intake.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_describes_the_maastricht_consultation() -> None:
    settings = load_settings(REPO / "config" / "intake.toml", environ={})
    deadline = settings.consultation.deadline_at
    assert deadline == datetime(2019, 2, 6, 0, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))
    assert deadline.utcoffset() is not None
    assert settings.consultation.language == "nl"
    assert settings.mailbox.url.startswith("maildir:")
    assert settings.outgoing.max_per_minute == 20
    assert settings.rules_path == REPO / "config" / "rules.toml"


def test_relative_paths_are_taken_from_the_config_files_folder(tmp_path: Path) -> None:
    path = write(
        tmp_path, '[mailbox]\nurl = "maildir:mail"\n[database]\nurl = "sqlite:///db/x.db"\n'
    )
    settings = load_settings(path, environ={})
    assert settings.mailbox.url == f"maildir:{tmp_path / 'mail'}"
    assert settings.database.url == f"sqlite:///{tmp_path / 'db' / 'x.db'}"
    # Defaults too: nothing lands in the current directory.
    assert settings.outgoing.url == f"file:{tmp_path / 'var' / 'outbox'}"


def test_environment_beats_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[mailbox]\nurl = "maildir:/a"\n[outgoing]\nmax_per_minute = 5\n')
    env = {
        "INTAKE_MAILBOX_URL": "imaps://u@mail.example.org/INBOX",
        "INTAKE_DATABASE_URL": "postgresql://intake@db/intake",
        "INTAKE_OUTGOING_URL": "smtp://relay.example.org:587",
        "INTAKE_OUTGOING_MAX_PER_MINUTE": "0",
        "INTAKE_CONSULTATION_DEADLINE": "2019-02-08T12:00:00",
        "INTAKE_ACK_REQUIRE_ADDRESSED": "true",
        "INTAKE_CONSULTATION_ADDRESSES": "a@example.org, b@example.org",
    }
    settings = load_settings(path, environ=env)
    assert settings.mailbox.url == "imaps://u@mail.example.org/INBOX"
    assert settings.database.url == "postgresql://intake@db/intake"
    assert settings.outgoing.url == "smtp://relay.example.org:587"
    assert settings.outgoing.max_per_minute == 0
    assert settings.consultation.deadline_at == datetime(
        2019, 2, 8, 12, tzinfo=ZoneInfo("Europe/Amsterdam")
    )
    assert settings.ack.require_addressed is True
    assert settings.consultation.addresses == ["a@example.org", "b@example.org"]


def test_error_names_file_key_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[consultation]\nname = "x"\n\n[mailbox]\nbatch_size = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert f"{path}:5: mailbox.batch_size:" in str(caught.value)


def test_unknown_key_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[mailbox]\nurl = "maildir:x"\nbatchsize = 10\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert f"{path}:3: mailbox.batchsize: unknown setting" in str(caught.value)


def test_boolean_must_be_true_or_false(tmp_path: Path) -> None:
    path = write(tmp_path, "")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"INTAKE_ACK_ENABLED": "yes"})
    assert "environment variable INTAKE_ACK_ENABLED: ack.enabled" in str(caught.value)


def test_password_in_config_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[mailbox]\nurl = "maildir:x"\npassword = "hunter2"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    message = str(caught.value)
    assert "INTAKE_MAILBOX_PASSWORD" in message
    assert f"{path}:3" in message
    assert "hunter2" not in message


def test_password_comes_from_env_or_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    path = write(tmp_path, f'[outgoing]\npassword_file = "{secret}"\n')
    settings = load_settings(path, environ={"INTAKE_MAILBOX_PASSWORD": "m"})
    assert settings.outgoing_password == "s3cret"
    assert settings.mailbox_password == "m"
    assert "s3cret" not in repr(settings)


def test_unreadable_password_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, '[mailbox]\npassword_file = "missing"\n')
    with pytest.raises(ConfigError, match=r"mailbox.password_file: cannot read"):
        load_settings(path, environ={})


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[mailbox\nurl = 1\n")
    with pytest.raises(ConfigError, match=r"intake.toml: not valid TOML.*line 1"):
        load_settings(path, environ={})


def test_unknown_time_zone_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[consultation]\ntimezone = "Europe/Maastricht"\n')
    with pytest.raises(ConfigError, match=r":2: consultation.timezone: unknown time zone"):
        load_settings(path, environ={})


def test_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})
