"""Shared fixtures: real servers (tests/servers/), the shared corpus location, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.servers.dovecot", "tests.servers.smtp"]

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
PUBLIC_MAIL = SHARED / "corpora" / "public-mail"
MAIL = Path(__file__).resolve().parent / "mail"


@pytest.fixture
def public_mail() -> Path:
    """The shared real-world corpus; tests that need it skip where it is absent."""
    if not (PUBLIC_MAIL / "index.json").exists():
        pytest.skip(
            f"shared corpus not found at ../shared/corpora/public-mail (looked in {PUBLIC_MAIL})"
        )
    return PUBLIC_MAIL
