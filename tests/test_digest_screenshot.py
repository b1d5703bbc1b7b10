"""The preview renders in a real browser: headless Chromium takes a non-trivial screenshot."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import Engine

from intake.config import Settings
from intake.digests import preview_digest
from tests.test_digest_fixtures import engine, local, settings, store

__all__ = ["engine", "settings"]  # fixtures

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_args(tmp_path: Path) -> list[str]:
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_a_script_in_a_suggestion_is_shown_as_text_and_does_not_run_in_chromium(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    attack = (
        "<script>document.body.setAttribute('data-pwned', 'yes')</script>"
        "<img src=x onerror=\"document.body.setAttribute('data-pwned', 'img')\">"
        '<a href="javascript:alert(1)">klik</a>'
    )
    store(engine, stored_at=local(2019, 2, 4, 10, 0), text=attack, subject=attack)
    store(engine, stored_at=local(2019, 2, 4, 11, 0), from_name=attack, kind="auto_reply")
    rendered = preview_digest(
        settings, engine, final=False, since=None, now=local(2019, 2, 5, 8, 0)
    )
    page = tmp_path / "digest.html"
    rendered.write_preview(page)
    dom = subprocess.run(
        [*chromium_args(tmp_path), "--dump-dom", page.as_uri()],
        check=True,
        capture_output=True,
        timeout=60,
        text=True,
    ).stdout
    # The browser's DOM after scripts ran: no attribute set, no live script or link, but the
    # text as the sender wrote it.
    assert "data-pwned=" not in dom
    assert "<script" not in dom.lower()
    assert not re.search(r"<a\s[^>]*href=\"javascript:", dom, re.IGNORECASE)
    assert "&lt;script&gt;document.body.setAttribute" in dom


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed")
def test_the_preview_renders_as_a_page_in_chromium(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    store(engine, stored_at=local(2019, 2, 4, 10, 0), from_name="Hermans, Jeroen", role="council")
    store(engine, stored_at=local(2019, 2, 4, 11, 0), theme="mobility", late=True)
    store(engine, stored_at=local(2019, 2, 4, 12, 0), kind="auto_reply")
    rendered = preview_digest(
        settings, engine, final=False, since=None, now=local(2019, 2, 5, 8, 0)
    )
    page = tmp_path / "digest.html"
    written = rendered.write_preview(page)
    assert [p.name for p in written] == ["digest.html", "digest.chart.png"]
    shot = tmp_path / "digest.png"
    subprocess.run(
        [
            *chromium_args(tmp_path),
            f"--screenshot={shot}",
            "--window-size=900,1600",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (900, 1600)
    assert len(data) > 40_000  # a blank or error page compresses to a few kilobytes
