"""A Dovecot server of the tests' own: Debian's dovecot with a dovecot.conf in a temporary folder,
IMAP and LMTP on free loopback ports, a maildir per user, plain passwords (loopback only),
stopped and deleted at the end. The tests' SMTP server delivers into it over LMTP (`deliver`),
the way a real mail system hands a message to its mailbox server, and people read their mail
with aioimaplib (`fetch_all`), the same client the desk uses."""

import asyncio
import email
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aioimaplib
from aiosmtpd.controller import Controller

from cti.sandbox.instance import free_port

DOVECOT = Path("/usr/sbin/dovecot")


class DovecotServer:
    """start(users), deliver(), fetch_all(), stop()."""

    def __init__(self) -> None:
        if not DOVECOT.exists():
            raise RuntimeError("dovecot is not installed: run scripts/env.sh (it installs it)")
        self.imap_port = 0
        self.lmtp_port = 0
        self.dir: Path | None = None
        self.passwords: dict[str, str] = {}

    def start(self, users: dict[str, str]) -> "DovecotServer":
        """Run dovecot (-F, in the foreground) for these users (address -> password)."""
        self.passwords = dict(users)
        self.dir = Path(tempfile.mkdtemp(prefix="cti-dovecot-"))
        self.dir.chmod(0o755)  # dovecot's own users (auth, mail) read and write under it
        self.imap_port, self.lmtp_port = free_port(), free_port()
        (self.dir / "users").write_text(
            "".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in users.items())
        )
        if os.geteuid() == 0:
            mail_user, login_user, internal_user = "dovecot", "dovenull", "dovecot"
        else:  # rootless: every process runs as the one who started it
            mail_user = login_user = internal_user = pwd.getpwuid(os.getuid()).pw_name
        (self.dir / "mail").mkdir()
        shutil.chown(self.dir / "mail", mail_user)
        uid = pwd.getpwnam(mail_user).pw_uid
        gid = pwd.getpwnam(mail_user).pw_gid
        (self.dir / "dovecot.conf").write_text(
            f"""
base_dir = {self.dir}/run
state_dir = {self.dir}/state
log_path = {self.dir}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_login_user = {login_user}
default_internal_user = {internal_user}
first_valid_uid = 0
mail_location = maildir:{self.dir}/mail/%u
passdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={self.dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {self.lmtp_port}
  }}
}}
service anvil {{
  chroot =
}}
lmtp_rcpt_check_quota = no
"""
        )
        self.proc = subprocess.Popen(
            [str(DOVECOT), "-F", "-c", str(self.dir / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60  # a loaded machine starts it slowly
        for port in (self.imap_port, self.lmtp_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"dovecot exited: {self.log()[-3000:]}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"dovecot did not listen: {self.log()}") from None
                    time.sleep(0.1)
        return self

    def log(self) -> str:
        """What dovecot wrote to its log and stderr."""
        out = ""
        if self.dir is not None and (self.dir / "dovecot.log").exists():
            out = (self.dir / "dovecot.log").read_text(errors="replace")
        return out

    def deliver(self, sender: str, recipients: list[str], data: bytes) -> None:
        """Hand a message to the mailboxes over LMTP (blocking: call from a thread)."""
        with smtplib.LMTP("127.0.0.1", self.lmtp_port, timeout=10) as lmtp:
            refused = lmtp.sendmail(sender, recipients, data)
        if refused:
            raise RuntimeError(f"dovecot refused {refused}")

    async def fetch_all(self, user: str) -> list[EmailMessage]:
        """Every message in the user's INBOX, oldest first (read with aioimaplib)."""
        imap = aioimaplib.IMAP4(host="127.0.0.1", port=self.imap_port, timeout=10)
        await imap.wait_hello_from_server()
        await imap.login(user, self.passwords[user])
        await imap.select("INBOX")
        found = await imap.uid_search("ALL")
        out = []
        for uid in found.lines[0].decode().split():
            r = await imap.uid("fetch", uid, "(BODY.PEEK[])")
            msg = email.message_from_bytes(bytes(r.lines[1]), policy=policy.default)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        await imap.logout()
        return out

    async def wait_for(self, user: str, count: int, timeout: float = 40.0) -> list[EmailMessage]:
        """The user's INBOX once it holds at least `count` messages."""
        deadline = time.monotonic() + timeout
        while True:
            got = await self.fetch_all(user)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        """Stop dovecot and delete its folder."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


class Relay:
    """An aiosmtpd handler that delivers every message into Dovecot over LMTP (a tiny MTA)."""

    def __init__(self, dovecot: DovecotServer) -> None:
        self.dovecot = dovecot
        self.count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        local = [r for r in envelope.rcpt_tos if r in self.dovecot.passwords]
        if local:
            await asyncio.to_thread(
                self.dovecot.deliver, envelope.mail_from, local, envelope.content
            )
        self.count += 1
        return "250 OK"


def relay(dovecot: DovecotServer) -> Controller:
    """A started SMTP server on a free loopback port that delivers into `dovecot`."""
    controller = Controller(
        Relay(dovecot), hostname="127.0.0.1", port=free_port(), ready_timeout=30
    )
    controller.start()
    return controller
