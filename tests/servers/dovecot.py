"""A real Dovecot IMAP server for the tests: 127.0.0.1, free ports, STARTTLS and implicit TLS.

Dovecot runs in the foreground (`dovecot -F -c <config>`) with a config, a trustme certificate,
a passwd-file user and a Maildir inside a fresh temporary folder, and logs to a file there.

Users and permissions: run as a normal user, every Dovecot process and the mail itself run as
that user (`default_internal_user`/`default_login_user` are set to it). Run as root (as in some
CI containers), Dovecot keeps its packaged `dovecot`/`dovenull` service users and the mail is
owned by `nobody`, because Dovecot refuses mail access as UID 0; the temporary folder is then
made traversable for those users.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from imapclient import IMAPClient

from intake.config import Mailbox
from tests.servers import free_port

DOVECOT = Path("/usr/sbin/dovecot")
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"

CONFIG = """\
# Written by tests/servers/dovecot.py; everything lives in {root}.
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{service_users}
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
# Plaintext LOGIN is allowed so that ?tls=none can be tested (loopback only).
disable_plaintext_auth = no
auth_mechanisms = plain login
# No delay after a wrong password: the tests try one on purpose.
auth_failure_delay = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={mail_uid} gid={mail_gid} home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # No auth penalty socket, so no growing delay for logins after a wrong-password test.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""


class Dovecot:
    """A running Dovecot with one user; helpers to put mail in and to misbehave on cue."""

    host = "127.0.0.1"
    user = "smartcity@maastricht.test"  # an address, so that URLs need %40

    def __init__(self, root: Path, extra_config: str = "") -> None:
        self.root = root
        self.extra_config = extra_config
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.imap_port = free_port()
        self.imaps_port = free_port()
        self.ca_path = str(root / "ca.pem")
        self.config_path = root / "dovecot.conf"
        self.log_path = root / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._write_files()

    # -- lifecycle -----------------------------------------------------------------------------

    def _write_files(self) -> None:
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        ca.cert_pem.write_to_path(self.ca_path)
        cert.private_key_pem.write_to_path(str(self.root / "key.pem"))
        for number, pem in enumerate(cert.cert_chain_pems):
            pem.write_to_path(str(self.root / "cert.pem"), append=number > 0)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        home = self.root / "home"
        home.mkdir()
        if os.geteuid() == 0:
            # Dovecot refuses mail access as root; its own service users need to reach the files.
            nobody = pwd.getpwnam("nobody")
            mail_uid, mail_gid = nobody.pw_uid, nobody.pw_gid
            os.chown(home, mail_uid, mail_gid)
            self.root.chmod(0o755)
            service_users = "# root: the packaged dovecot/dovenull users run the services"
        else:
            mail_uid, mail_gid = os.getuid(), os.getgid()
            name, group = pwd.getpwuid(mail_uid).pw_name, grp.getgrgid(mail_gid).gr_name
            service_users = (
                f"default_internal_user = {name}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {name}"
            )
        self.config_path.write_text(
            CONFIG.format(
                root=self.root,
                service_users=service_users,
                mail_uid=mail_uid,
                mail_gid=mail_gid,
                imap_port=self.imap_port,
                imaps_port=self.imaps_port,
            )
            + self.extra_config
        )

    def start(self) -> None:
        """Start Dovecot and wait until both ports accept connections."""
        if self.is_running():
            return
        self._process = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "dovecot.stderr").open("ab"),
            start_new_session=True,  # Ctrl-C in pytest must not reach it before stop()
        )
        deadline = time.monotonic() + 15
        while not all(self._accepts(port) for port in (self.imap_port, self.imaps_port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Dovecot did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the Dovecot this fixture started (by its PID) and wait for it to exit."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self, *, drop_connections: bool = False) -> None:
        """Stop and start again. The IMAP processes of open connections outlive a stopped master
        and go on serving; `drop_connections` closes them first, as a host's restart does."""
        if drop_connections:
            self.kick()
        self.stop()
        self.start()

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _accepts(self, port: int) -> bool:
        try:
            with socket.create_connection((self.host, port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.log_path, self.root / "dovecot.stderr"):
            if path.exists():
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    # -- URLs and settings for intake ----------------------------------------------------------

    def url(self, folder: str = "INBOX", tls: str = "starttls") -> str:
        """An intake mailbox URL for this server: tls is starttls, implicit or none."""
        user = quote(self.user, safe="")
        if tls == "implicit":
            return f"imaps://{user}@{self.host}:{self.imaps_port}/{quote(folder)}"
        query = "?tls=none" if tls == "none" else ""
        if tls not in ("starttls", "none"):
            raise ValueError(f"tls must be starttls, implicit or none, not {tls!r}")
        return f"imap://{user}@{self.host}:{self.imap_port}/{quote(folder)}{query}"

    def mailbox(self, folder: str = "INBOX", tls: str = "implicit", **settings: Any) -> Mailbox:
        """Mailbox settings for this server that trust its CA (override any key)."""
        values: dict[str, Any] = {
            "url": self.url(folder, tls),
            "ca_file": self.ca_path,
            "timeout_seconds": 5.0,
        }
        values.update(settings)
        return Mailbox(**values)

    # -- talking to the server as a mail client ------------------------------------------------

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A logged-in IMAPClient over implicit TLS."""
        context = ssl.create_default_context(cafile=self.ca_path)
        client = IMAPClient(self.host, port=self.imaps_port, ssl_context=context, timeout=10)
        try:
            client.login(self.user, self.password)
            client.normalise_times = False
            yield client
        finally:
            try:
                client.logout()
            except Exception:
                client.shutdown()

    def append(
        self,
        raw: bytes,
        folder: str = "INBOX",
        internaldate: datetime | None = None,
        flags: tuple[str, ...] | list[str] = (),
    ) -> int:
        """Deliver `raw` into `folder` (created when missing); returns its UID."""
        with self.client() as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        match = re.search(rb"APPENDUID \d+ (\d+)", response)
        assert match, response
        return int(match.group(1))

    def uids(self, folder: str = "INBOX") -> list[int]:
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            return sorted(client.search(["ALL"]))

    def flags(self, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """The flags of every message in `folder`, read without changing them."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            return {uid: tuple(d[b"FLAGS"]) for uid, d in client.fetch(uids, ["FLAGS"]).items()}

    def uidvalidity(self, folder: str = "INBOX") -> int:
        with self.client() as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    # -- resetting and misbehaving -------------------------------------------------------------

    def reset(self) -> None:
        """Empty INBOX and delete every other folder of the user."""
        self.start()
        with self.client() as client:
            names = [name for _, _, name in client.list_folders() if name.upper() != "INBOX"]
            for name in sorted(names, key=len, reverse=True):  # children before parents
                client.delete_folder(name)
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.set_flags(uids, [b"\\Deleted"], silent=True)
                client.expunge()  # a test mailbox: removing every message is the point

    def recreate_folder(self, name: str = "INBOX") -> int:
        """Give `name` a new UIDVALIDITY, as a rebuilt or migrated mailbox gets; returns it."""
        validity = self.uidvalidity(name) + 1
        self.doveadm("mailbox", "update", "-u", self.user, "--uid-validity", str(validity), name)
        return validity

    def kick(self) -> None:
        """Drop every IMAP connection of the user (`doveadm kick`)."""
        self.doveadm("kick", self.user, ok=(0, 68))  # 68 (EX_NOUSER): nobody was connected

    def doveadm(self, *args: str, ok: tuple[int, ...] = (0,)) -> str:
        result = subprocess.run(
            [DOVEADM, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if result.returncode not in ok:
            raise RuntimeError(f"doveadm {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout


@contextmanager
def running_dovecot(extra_config: str = "") -> Iterator[Dovecot]:
    """A Dovecot started in a folder of its own, stopped and removed afterwards; the test is
    skipped where Dovecot is not installed."""
    if not DOVECOT.exists():
        pytest.skip(f"Dovecot not installed ({DOVECOT} missing; apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="intake-dovecot-"))
    server = Dovecot(root, extra_config)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One real Dovecot for the whole session."""
    with running_dovecot() as server:
        yield server


@pytest.fixture
def imap_mailbox(dovecot: Dovecot) -> Dovecot:
    """The session's Dovecot, running, with an empty INBOX and no other folders."""
    dovecot.reset()
    return dovecot
