"""intake.toml + INTAKE_<SECTION>_<KEY> env + *_file secrets → frozen Settings."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from datetime import datetime, time
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from intake.errors import ConfigError

DEFAULT_CONFIG = Path("config/intake.toml")
ENV_PREFIX = "INTAKE_"
# Keys that hold secrets: only ever read from the environment or from a `<key>_file` setting.
SECRET_KEYS = {"password", "token", "secret"}


def _strict_bool(value: object) -> object:
    # "yes" or "1" in a config is a typo waiting to happen: only true/false are accepted.
    if isinstance(value, str):
        if value.strip().lower() == "true":
            return True
        if value.strip().lower() == "false":
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if isinstance(value, bool):
        return value
    raise ValueError(f"expected true or false, got {value!r}")


Bool = Annotated[bool, BeforeValidator(_strict_bool)]


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


StrList = Annotated[list[str], BeforeValidator(_comma_list)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Consultation(_Section):
    name: str = "Smart City: onderzoeksopdracht"
    deadline: datetime = datetime(2019, 2, 6, 0, 0)
    timezone: str = "Europe/Amsterdam"
    language: str = "nl"
    addresses: StrList = Field(default_factory=list)
    rules: str = "rules.toml"
    templates: str = ""
    contact: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in ("nl", "en"):
            raise ValueError("language must be nl or en")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def deadline_at(self) -> datetime:
        """The deadline as an aware datetime (a naive value is local time in `timezone`)."""
        if self.deadline.tzinfo is None:
            return self.deadline.replace(tzinfo=self.tz)
        return self.deadline


class Mailbox(_Section):
    url: str = "maildir:var/mail"
    password_file: str = ""
    ca_file: str = ""
    processed_folder: str = ""
    batch_size: int = Field(default=50, ge=1, le=1000)
    max_message_bytes: int = Field(default=25_000_000, ge=1024)
    timeout_seconds: float = Field(default=60.0, gt=0)


class Database(_Section):
    url: str = "sqlite:///var/intake.db"


class Outgoing(_Section):
    url: str = "file:var/outbox"
    from_address: str = ""
    from_name: str = "Gemeente Maastricht"
    username: str = ""
    password_file: str = ""
    ca_file: str = ""
    message_id_domain: str = ""
    max_per_minute: int = Field(default=20, ge=0)
    timeout_seconds: float = Field(default=30.0, gt=0)


class Ack(_Section):
    enabled: Bool = True
    honour_suppress_header: Bool = True
    require_addressed: Bool = False
    max_per_sender_per_day: int = Field(default=3, ge=0)
    max_per_thread: int = Field(default=1, ge=0)


class Digest(_Section):
    recipients: StrList = Field(default_factory=list)
    daily_at: time = time(8, 0)
    language: str = "nl"
    send_empty: Bool = True
    final_at: datetime | None = None


class Worker(_Section):
    poll_interval_seconds: float = Field(default=60.0, gt=0)
    stale_poll_seconds: float = Field(default=900.0, gt=0)
    # Processes that parse and triage mail beside the one that fetches and stores it; None:
    # one per core; 0 or 1: parse in the polling process itself.
    parse_processes: int | None = Field(default=None, ge=0)


class Logging(_Section):
    level: str = "INFO"

    @field_validator("level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("level must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()


class Settings(BaseModel):
    """Every setting of intake, validated; passed explicitly, never global."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    consultation: Consultation = Field(default_factory=Consultation)
    mailbox: Mailbox = Field(default_factory=Mailbox)
    database: Database = Field(default_factory=Database)
    outgoing: Outgoing = Field(default_factory=Outgoing)
    ack: Ack = Field(default_factory=Ack)
    digest: Digest = Field(default_factory=Digest)
    worker: Worker = Field(default_factory=Worker)
    logging: Logging = Field(default_factory=Logging)
    # Not settings but where they came from: resolved file locations and secrets.
    source_file: str = ""
    mailbox_password: str = Field(default="", repr=False)
    outgoing_password: str = Field(default="", repr=False)

    @property
    def rules_path(self) -> Path:
        return Path(self.consultation.rules)

    @property
    def templates_dir(self) -> Path | None:
        """The admins' templates folder; None for the templates shipped with intake."""
        return Path(self.consultation.templates) if self.consultation.templates else None


SECTIONS: dict[str, type[_Section]] = {
    name: field.annotation
    for name, field in Settings.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, _Section)
}


def load_settings(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Settings from the config file, then env overrides; raises ConfigError naming file, key, line.

    `path` None means `INTAKE_CONFIG` or `config/intake.toml`; a missing default file is not an
    error (intake then runs on built-in defaults plus env), a missing named file is.
    """
    env = dict(os.environ if environ is None else environ)
    explicit = path is not None or bool(env.get("INTAKE_CONFIG"))
    config_path = Path(path or env.get("INTAKE_CONFIG") or DEFAULT_CONFIG)
    text, data = "", dict[str, Any]()
    if config_path.exists():
        text, data = _read_toml(config_path)
    elif explicit:
        raise ConfigError(f"{config_path}: config file not found")
    base_dir = config_path.resolve().parent if text else Path.cwd()

    problems: list[str] = []
    origin: dict[tuple[str, str], str] = {}
    for section, keys in data.items():
        if not isinstance(keys, dict):
            continue
        for key in list(keys):
            if key in SECRET_KEYS:
                line = _line_of(text, section, key)
                problems.append(
                    f"{config_path}:{line}: {section}.{key}: secrets never go in config files; "
                    f"set {ENV_PREFIX}{section.upper()}_{key.upper()} or {key}_file"
                )
                del keys[key]
    _resolve_paths(data, base_dir)
    for section, model in SECTIONS.items():
        for key in model.model_fields:
            var = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if var in env:
                value = env[var]
                if (section, key) in _PATH_KEYS and value:
                    value = resolve_location(value, Path.cwd())
                data.setdefault(section, {})[key] = value
                origin[(section, key)] = var

    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [str(part) for part in error["loc"]]
            dotted = ".".join(loc)
            if len(loc) >= 2 and (loc[0], loc[1]) in origin:
                where = f"environment variable {origin[(loc[0], loc[1])]}"
            else:
                line = _line_of(text, *loc[:2]) if text else None
                where = f"{config_path}:{line}" if line else str(config_path)
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown setting"
            problems.append(f"{where}: {dotted}: {message}")
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)

    secrets = {
        "mailbox_password": _secret(env, "mailbox", settings.mailbox.password_file, config_path),
        "outgoing_password": _secret(env, "outgoing", settings.outgoing.password_file, config_path),
    }
    return settings.model_copy(
        update={"source_file": str(config_path.resolve()) if text else "", **secrets}
    )


def _read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _secret(env: Mapping[str, str], section: str, file_setting: str, config_path: Path) -> str:
    var = f"{ENV_PREFIX}{section.upper()}_PASSWORD"
    if env.get(var):
        return env[var]
    if not file_setting:
        return ""
    try:
        return Path(file_setting).read_text(encoding="utf-8").strip()
    except OSError as exc:
        # Loud, never an empty password: a silent fallback would look like a login failure.
        raise ConfigError(
            f"{config_path}: {section}.password_file: cannot read {file_setting}: {exc.strerror}"
        ) from exc


# Settings whose value is a local path or a URL holding one; relative ones are taken from the
# config file's folder, so that `--config elsewhere/intake.toml` never writes into the checkout.
_PATH_KEYS = {
    ("consultation", "rules"),
    ("consultation", "templates"),
    ("mailbox", "url"),
    ("mailbox", "password_file"),
    ("mailbox", "ca_file"),
    ("database", "url"),
    ("outgoing", "url"),
    ("outgoing", "password_file"),
    ("outgoing", "ca_file"),
}


def _resolve_paths(data: dict[str, Any], base_dir: Path) -> None:
    # Defaults are filled in first so that they, too, are taken from the config file's folder.
    for section, key in _PATH_KEYS:
        values = data.setdefault(section, {})
        if not isinstance(values, dict):
            continue
        value = values.get(key, SECTIONS[section].model_fields[key].default)
        if isinstance(value, str) and value:
            values[key] = resolve_location(value, base_dir)


def resolve_location(value: str, base_dir: Path) -> str:
    """A path, `maildir:`/`file:` URL or `sqlite:///` URL with a relative path made absolute."""
    for prefix in ("maildir:", "file:", "sqlite:///"):
        if value.startswith(prefix):
            rest = value[len(prefix) :]
            if not rest or rest.startswith("/") or rest == ":memory:":
                return value
            return prefix + str(_resolve(rest, base_dir))
    if "://" in value or value.startswith("/"):
        return value
    return str(_resolve(value, base_dir))


def _resolve(value: str, base_dir: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


def _line_of(text: str, section: str, key: str | None = None) -> int | None:
    """The line (1-based) of `[section]` or of `key` inside it, for error messages."""
    current = ""
    section_line = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([^\]]+?)\s*\]", stripped)
        if header:
            current = header.group(1).strip().strip('"')
            if current == section:
                section_line = number
            continue
        if current == section and key and re.match(rf"^\"?{re.escape(key)}\"?\s*=", stripped):
            return number
    return section_line
