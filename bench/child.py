"""The intake side of the benchmark, run as its own process so its memory is intake's alone.

    python bench/child.py poll|digest|export CONFIG

With INTAKE_BENCH_PROFILE=FOLDER set, each step writes FOLDER/<step>.prof: a cProfile of the
CPU time of the step's main thread (waits for parser processes and the pool's threads are not
in it; parser processes are not profiled).

Only the standard library is imported at the top: parser processes (spawned) import the main
module again, and with `python -m intake run` they import only what parsing needs; so here.

Each step runs the same functions as `intake poll` (without delivering the outbox), the final
digest of `intake digest --final --send` (recorded and queued, not delivered) and the final
digest's CSV/XLSX export, and prints one JSON line of figures.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path


def poll(config: str) -> dict[str, object]:
    from intake import ingest
    from intake.config import load_settings
    from intake.ingest_pool import analyser_for
    from intake.store.db import open_database
    from intake.triage.rules import load_rules

    settings = load_settings(config)
    engine = open_database(settings.database.url)
    rules = load_rules(settings.rules_path)
    began = time.perf_counter()
    with analyser_for(settings) as analyser:
        summary = ingest.poll_once(settings, engine, rules, analyser=analyser)
    return {
        "seconds": time.perf_counter() - began,
        "fetched": summary.fetched,
        "stored": summary.stored,
        "known": summary.known,
        "quarantined": summary.quarantined,
        "kinds": summary.kinds,
        "stages": summary.seconds,
    }


def digest(config: str) -> dict[str, object]:
    from intake.config import load_settings
    from intake.digests import send_due_digests
    from intake.store.db import open_database

    settings = load_settings(config)
    engine = open_database(settings.database.url)
    began = time.perf_counter()
    queued = send_due_digests(settings, engine, datetime.now(UTC), force_final=True)
    seconds = time.perf_counter() - began
    with engine.connect() as connection:
        size = connection.exec_driver_sql(
            "SELECT length(data) FROM outbox WHERE purpose = 'digest' ORDER BY id DESC"
        ).scalar()
    return {"seconds": seconds, "queued": queued, "mail_bytes": size}


def export(config: str) -> dict[str, object]:
    from intake.config import load_settings
    from intake.digests.figures import Span
    from intake.digests.spreadsheets import export_files, suggestion_rows
    from intake.store.db import open_database, session_factory

    settings = load_settings(config)
    engine = open_database(settings.database.url)
    tz = settings.consultation.tz
    span = Span(start=None, end=datetime.now(UTC), since=None)
    began = time.perf_counter()
    with session_factory(engine)() as session, tempfile.TemporaryDirectory() as folder:
        files = export_files(suggestion_rows(session, span, tz), Path(folder))
        sizes = {path.suffix.lstrip("."): path.stat().st_size for path in files}
    return {"seconds": time.perf_counter() - began, "bytes": sizes}


def main() -> None:
    step, config = sys.argv[1], sys.argv[2]
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        filename=str(Path(config).with_name(f"{step}.log")),
    )
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    run = {"poll": poll, "digest": digest, "export": export}[step]
    profile = os.environ.get("INTAKE_BENCH_PROFILE")  # a folder: where <step>.prof goes
    if profile:
        import cProfile

        with cProfile.Profile(time.thread_time) as profiler:
            result = run(config)
        profiler.dump_stats(str(Path(profile) / f"{step}.prof"))
    else:
        result = run(config)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
