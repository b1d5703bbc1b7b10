"""The `intake` command: parse options, load settings, call one function, print the result."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from intake import (
    __version__,
    demo,
    digests,
    explain,
    export,
    health,
    ingest,
    outbox,
    storing,
    worker,
)
from intake.analysis import analyse
from intake.config import Settings, load_settings
from intake.errors import ConfigError, IntakeError
from intake.ingest_pool import analyser_for
from intake.sources import RawMail
from intake.store import queries
from intake.store.db import current_revision, open_database, session_factory, upgrade_to_head
from intake.triage.rules import load_rules

log = logging.getLogger("intake")
F = TypeVar("F", bound=Callable[..., Any])


def main() -> None:
    cli(prog_name="intake")


def _errors(func: F) -> F:
    """Map intake's errors onto exit codes: 2 for config and usage, 1 for runtime failures."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                click.echo(f"error: {problem}", err=True)
            sys.exit(2)
        except IntakeError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _settings(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        settings = load_settings(obj.get("config"))
        logging.basicConfig(
            level=settings.logging.level,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        obj["settings"] = settings
    settings_: Settings = obj["settings"]
    return settings_


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    envvar="INTAKE_CONFIG",
    help="Settings file (default config/intake.toml; env INTAKE_CONFIG).",
)
@click.version_option(__version__, prog_name="intake")
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """intake: email-driven intake and triage for public consultations.

    Reads the consultation mailbox, files every suggestion under themes, stores everything
    and explains each decision. Settings: config/intake.toml, overridable per key with
    INTAKE_<SECTION>_<KEY>.
    """
    ctx.ensure_object(dict)["config"] = config


@cli.command()
@click.pass_context
@_errors
def poll(ctx: click.Context) -> None:
    """Fetch new mail once: parse, triage and store it, then print a one-line summary."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    rules = load_rules(settings.rules_path)
    progress = _progress_printer() if sys.stderr.isatty() else None
    with analyser_for(settings) as analyser:
        summary = ingest.poll_once(settings, engine, rules, progress=progress, analyser=analyser)
    if progress:
        click.echo("", err=True)
    delivery = outbox.deliver_due(settings, engine)
    digests.mark_sent_digests(engine)  # a queued digest may have gone out with this delivery
    click.echo(f"{summary}; outbox: {delivery}")


@cli.command()
@click.pass_context
@_errors
def send(ctx: click.Context) -> None:
    """Send the queued acknowledgements and digests that are due."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    delivery = outbox.deliver_due(settings, engine)
    digests.mark_sent_digests(engine)
    click.echo(str(delivery))


@cli.command(name="digest")
@click.option("--final", is_flag=True, help="The final digest: every suggestion, complete texts.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]),
    help="Preview from this local date or time (default: the end of the last digest).",
)
@click.option(
    "--preview",
    type=click.Path(dir_okay=False),
    help="Write the digest as HTML to this file, the chart beside it; records and sends nothing.",
)
@click.option(
    "--send",
    "send_",
    is_flag=True,
    help="Record and queue the digests that are due (with --final: the final one now), "
    "then deliver the outbox.",
)
@click.pass_context
@_errors
def digest_cmd(
    ctx: click.Context, final: bool, since: datetime | None, preview: str | None, send_: bool
) -> None:
    """Preview a digest for staff as HTML, or send the digests that are due."""
    if bool(preview) == send_:
        raise click.UsageError("give --preview FILE.html or --send")
    if since and send_:
        raise click.UsageError("--since is for --preview: sent digests continue from the last one")
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    now = datetime.now(UTC)
    if preview:
        start = since.replace(tzinfo=settings.consultation.tz) if since else None
        rendered = digests.preview_digest(settings, engine, final=final, since=start, now=now)
        for path in rendered.write_preview(Path(preview)):
            click.echo(f"wrote {path}")
        return
    queued = digests.send_due_digests(settings, engine, now, force_final=final)
    delivery = outbox.deliver_due(settings, engine)
    digests.mark_sent_digests(engine)
    click.echo(f"queued: {', '.join(queued) if queued else 'nothing due'}; outbox: {delivery}")


@cli.group(name="outbox", invoke_without_command=True)
@click.pass_context
@_errors
def outbox_cmd(ctx: click.Context) -> None:
    """List queued, failed and recently sent mail."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    tz = settings.consultation.tz
    rows = outbox.listing(engine)
    if not rows:
        click.echo("the outbox is empty")
    for row in rows:
        when = (row.sent_at or row.next_attempt_at).astimezone(tz).strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{row.id:>5}  {row.status:<8} {when}  {row.purpose:<6} "
            f"{', '.join(row.recipients)[:40]:<40}  {row.subject[:50]}"
        )
        if row.last_error and row.status != "sent":
            click.echo(f"       attempts {row.attempts}: {row.last_error}")


@outbox_cmd.command(name="retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all-failed", is_flag=True, help="Queue every failed mail again.")
@click.pass_context
@_errors
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], all_failed: bool) -> None:
    """Queue failed mail again: by ID, or --all-failed."""
    if bool(ids) == all_failed:
        raise click.UsageError("give outbox IDs or --all-failed")
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    count = outbox.retry(engine, None if all_failed else list(ids), datetime.now(UTC))
    click.echo(f"queued {count} mail(s) again")


def _progress_printer() -> Callable[[ingest.PollSummary], None]:
    def show(summary: ingest.PollSummary) -> None:
        click.echo(f"\r{summary} …", nl=False, err=True)

    return show


@cli.command(name="export")
@click.option(
    "--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File to write (default: standard output).",
)
@click.pass_context
@_errors
def export_cmd(ctx: click.Context, fmt: str, output: str) -> None:
    """Write every stored message as JSON Lines or CSV (formula-safe)."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    rows = export.export_rows(engine, settings.consultation.tz)
    writer = export.write_jsonl if fmt == "jsonl" else export.write_csv
    if output == "-":
        count = writer(rows, sys.stdout)
    else:
        # newline="" lets the csv module write its own CRLF row ends (RFC 4180).
        with open(output, "w", encoding="utf-8", newline="" if fmt == "csv" else None) as out:
            count = writer(rows, out)
    if output != "-":
        click.echo(f"wrote {count} messages to {output}", err=True)


@cli.command()
@click.argument("ref")
@click.option("--raw", is_flag=True, help="Write the original message, byte for byte.")
@click.pass_context
@_errors
def show(ctx: click.Context, ref: str, raw: bool) -> None:
    """Show one stored message in full; REF is its id or Message-ID."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    with session_factory(engine)() as session:
        message = queries.find_message(session, ref)
        if raw:
            sys.stdout.buffer.write(message.raw)
            sys.stdout.buffer.flush()
            return
        ids = queries.message_ids_for(
            session, [message.duplicate_of_id or 0, message.thread_of_id or 0]
        )
        click.echo("\n".join(explain.describe_message(message, settings.consultation.tz, ids)))


@cli.group()
def rules() -> None:
    """Check the rules file, or explain how the rules judge a message."""


@rules.command(name="check")
@click.pass_context
@_errors
def rules_check(ctx: click.Context) -> None:
    """Validate the rules file; print what is wrong with file, key and line."""
    settings = _settings(ctx)
    loaded = load_rules(settings.rules_path)
    click.echo(
        f"{settings.rules_path}: ok, {len(loaded.themes)} themes, {len(loaded.rules)} theme rules, "
        f"{len(loaded.kind_patterns)} kind patterns"
    )


@rules.command(name="explain")
@click.argument("ref")
@click.pass_context
@_errors
def rules_explain(ctx: click.Context, ref: str) -> None:
    """Explain the kind and themes of a message: REF is an id, a Message-ID or an .eml file."""
    settings = _settings(ctx)
    loaded = load_rules(settings.rules_path)
    path = Path(ref)
    if path.is_file():
        data = path.read_bytes()
        arrived = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        header = f"{path} (arrival taken as the file's time, {arrived.isoformat()})"
    else:
        engine = open_database(settings.database.url)
        with session_factory(engine)() as session:
            message = queries.find_message(session, ref)
            data, arrived = message.raw, message.received_at
            header = f"message {message.id} <{message.message_id}>, stored as {message.kind}"
    raw = RawMail(key="explain", data=data, arrived_at=arrived, size=len(data))
    analysed = analyse(raw, loaded, storing.triage_context(settings))
    click.echo(header)
    click.echo(f"subject: {analysed.mail.subject}")
    click.echo("\n".join(explain.explain_verdict(analysed.verdict)))


@cli.command()
@click.option(
    "--check",
    is_flag=True,
    help="Health check: exit 1 and print each problem when the last good poll is older than "
    "worker.stale_poll_seconds, outbox mail failed or quarantined mail waits for a look.",
)
@click.pass_context
@_errors
def status(ctx: click.Context, check: bool) -> None:
    """Counts per kind and theme, the last poll and the mailbox position; or --check health."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    if check:
        report = health.check_health(settings, engine, datetime.now(UTC))
        for problem in report.problems:
            click.echo(f"problem: {problem}")
        click.echo("\n".join(report.lines))
        click.echo("healthy" if report.ok else "unhealthy")
        sys.exit(0 if report.ok else 1)
    tz = settings.consultation.tz
    with session_factory(engine)() as session:
        counts = queries.counts(session)
        states = queries.all_mailbox_states(session)
    click.echo(f"consultation: {settings.consultation.name}")
    click.echo(f"deadline:     {settings.consultation.deadline_at.astimezone(tz).isoformat()}")
    click.echo(f"messages:     {counts.total}")
    click.echo("\n".join(explain.table(sorted(counts.kinds.items()))))
    click.echo(f"suggestions by primary theme (late {counts.late}, resends {counts.resends}):")
    click.echo("\n".join(explain.table(sorted((str(k), v) for k, v in counts.themes.items()))))
    for state in states:
        last = (
            state.last_success_at.astimezone(tz).isoformat() if state.last_success_at else "never"
        )
        click.echo(f"mailbox:      {state.source}")
        click.echo(f"  last good poll: {last}")
        click.echo(f"  position:       UIDVALIDITY {state.uidvalidity}, last UID {state.last_uid}")
        if state.last_error:
            click.echo(f"  last error:     {state.last_error}")


@cli.command(name="run")
@click.pass_context
@_errors
def run_cmd(ctx: click.Context) -> None:
    """Run the worker: poll, send and digest on schedule until SIGTERM or Ctrl-C.

    One worker per database: a second one refuses to start (exit 1) while the first is alive.
    """
    settings = _settings(ctx)
    # APScheduler logs every job run at INFO; intake logs what the jobs did.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    worker.run(settings)


@cli.group(name="quarantine", invoke_without_command=True)
@click.pass_context
@_errors
def quarantine(ctx: click.Context) -> None:
    """List quarantined (unparseable) mail waiting for a look."""
    if ctx.invoked_subcommand is not None:
        return
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    tz = settings.consultation.tz
    waiting = health.waiting_messages(engine)
    if not waiting:
        click.echo("no quarantined mail waiting")
    for message in waiting:
        when = message.received_at.astimezone(tz).strftime("%Y-%m-%d %H:%M")
        click.echo(f"{message.id:>5}  {when}  {message.from_addr[:40]:<40}  {message.subject[:50]}")
        click.echo(f"       {(message.parse_error or '')[:120]}")


@quarantine.command(name="release")
@click.argument("ids", nargs=-1, type=int, required=True)
@click.pass_context
@_errors
def quarantine_release(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Mark quarantined messages as looked at, so that status --check stops reporting them."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url)
    released = health.release_quarantined(engine, list(ids), datetime.now(UTC))
    click.echo(
        f"released {len(released)} message(s){': ' if released else ''}"
        f"{', '.join(map(str, released))}"
    )
    missing = sorted(set(ids) - set(released))
    if missing:
        click.echo(f"not quarantined or already released: {', '.join(map(str, missing))}", err=True)


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command(name="upgrade")
@click.pass_context
@_errors
def db_upgrade(ctx: click.Context) -> None:
    """Migrate the database to the newest schema (also done automatically at start)."""
    settings = _settings(ctx)
    engine = open_database(settings.database.url, migrate=False)
    upgrade_to_head(engine)
    click.echo(f"database at revision {current_revision(engine)}")


@cli.command(name="demo")
@click.pass_context
@_errors
def demo_cmd(ctx: click.Context) -> None:
    """Deliver the sample mail into the local Maildir, poll it, and show what intake made of it."""
    settings = _settings(ctx)
    delivered = demo.deliver_samples(settings.mailbox.url)
    click.echo(f"delivered {delivered} sample messages into {settings.mailbox.url}")
    engine = open_database(settings.database.url)
    summary = ingest.poll_once(settings, engine, load_rules(settings.rules_path))
    click.echo(f"poll: {summary}")
    delivery = outbox.deliver_due(settings, engine)
    click.echo(f"outbox ({settings.outgoing.url}): {delivery}")
    click.echo("")
    with session_factory(engine)() as session:
        for line in demo.overview(session, settings.consultation.tz):
            click.echo(line)
    click.echo("")
    click.echo("acknowledgements written:")
    for line in demo.written_acknowledgements(settings.outgoing.url):
        click.echo(line)
    click.echo("")
    click.echo("next: intake show ID, intake rules explain ID, intake export --format csv")
