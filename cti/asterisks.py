"""The Asterisk servers one CTI server works with, each by its name.

A call's Uniqueid and Linkedid are unique per Asterisk only, so every call, agent state and queue
is keyed by the name of the Asterisk it lives on. The single-Asterisk settings (CTI_AMI_*,
CTI_QUEUE_LOG_*) declare the default one, named "main"; CTI_ASTERISKS (or `[asterisks.NAME]`
tables in the TOML file) declares more, each with its own AMI link, queue_log and site.
"""

import json
import re
from dataclasses import dataclass, field
from typing import Any

from cti.errors import ConfigError

DEFAULT_ASTERISK = "main"
# A name goes into journal keys, URLs and page filters: short, lower-case, no spaces.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
# What one declaration may say (anything else is a typo and refused).
_KEYS = {
    "site",
    "ami_host",
    "ami_port",
    "ami_user",
    "ami_secret",
    "queue_log_path",
    "queue_log_database_url",
    "queue_log_table",
    "cdr_database_url",
    "cdr_table",
    "agi_port",
    "agi_secret",
    "sandbox",
}


@dataclass(frozen=True)
class AsteriskServer:
    """One Asterisk: its name (the key of its calls), the site it serves, its AMI link, its
    queue_log (a file this host reads, or a realtime table) and its CDR table, if any."""

    name: str
    site: str
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str = field(repr=False)
    queue_log_path: str = ""
    queue_log_database_url: str = field(default="", repr=False)
    queue_log_table: str = "queue_log"
    # Its CDRs in a database (cdr_pgsql; cti/cdr.py), reconciled like the default Asterisk's.
    cdr_database_url: str = field(default="", repr=False)
    cdr_table: str = "cdr"
    # This Asterisk's own FastAGI port on the CTI server (its dialplan's CTI_AGI_PORT), so its
    # IVR steps are known to be its calls'; 0: no IVR for it (the dialplan queues its calls).
    # Its AGI URLs' secret; empty: the CTI_AGI_SECRET.
    agi_port: int = 0
    agi_secret: str = field(default="", repr=False)

    @property
    def is_default(self) -> bool:
        """The Asterisk of the single-Asterisk settings."""
        return self.name == DEFAULT_ASTERISK

    def masked(self) -> dict[str, Any]:
        """This declaration without its secrets, for logs and /healthz."""
        shown: dict[str, Any] = {
            "name": self.name,
            "site": self.site,
            "ami": f"{self.ami_host}:{self.ami_port}",
            "ami_user": self.ami_user,
            "queue_log": self.queue_log_path or (self.queue_log_table if
                                                 self.queue_log_database_url else ""),
        }  # fmt: skip
        if self.cdr_database_url:
            shown["cdr"] = self.cdr_table
        return shown


def _text(name: str, key: str, value: Any) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ConfigError(f"setting asterisks: {name}.{key} must be text")
    return str(value).strip()


def parse_asterisks(raw: Any) -> dict[str, dict[str, str]]:
    """The declarations of CTI_ASTERISKS (a JSON object: name -> {site, ami_host, ...}) or of the
    TOML file's `[asterisks.NAME]` tables, checked: names, known keys, text values."""
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"setting asterisks: not JSON ({exc.msg})") from exc
    if not isinstance(raw, dict):
        raise ConfigError('setting asterisks: an object of {"name": {"ami_host": ...}} is needed')
    out: dict[str, dict[str, str]] = {}
    for name, decl in raw.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ConfigError(
                f"setting asterisks: name {name!r} must be lower-case letters, digits, - or _ "
                "(at most 40)"
            )
        if not isinstance(decl, dict):
            raise ConfigError(f"setting asterisks: {name} must be a table of settings")
        unknown = sorted(set(decl) - _KEYS)
        if unknown:
            raise ConfigError(f"setting asterisks: {name}: unknown key(s) {', '.join(unknown)}")
        out[name] = {k: _text(name, k, v) for k, v in decl.items()}
    return out


def server_from(name: str, decl: dict[str, str], default_site: str = "") -> AsteriskServer:
    """One declaration as an AsteriskServer (a `sandbox` key fills AMI and queue_log from that
    local sandbox instance, as the single-Asterisk settings do)."""
    values = dict(decl)
    sandbox = values.pop("sandbox", "")
    if sandbox:
        from cti.sandbox import Instance

        st = Instance(sandbox).load()
        if st is None:
            raise ConfigError(f"setting asterisks: {name}: sandbox {sandbox!r} is not set up")
        values.setdefault("ami_host", st.ami_host)
        values.setdefault("ami_port", str(st.ami_port))
        values.setdefault("ami_user", st.ami_user)
        values.setdefault("ami_secret", st.ami_secret)
        values.setdefault("queue_log_path", st.queue_log)
        values.setdefault("agi_port", str(st.agi_port))
        values.setdefault("agi_secret", st.agi_secret)
    if not values.get("ami_host"):
        raise ConfigError(f"setting asterisks: {name}: ami_host is needed")
    try:
        port = int(values.get("ami_port") or 5038)
    except ValueError as exc:
        raise ConfigError(f"setting asterisks: {name}: ami_port must be a number") from exc
    if not 0 < port < 65536:
        raise ConfigError(f"setting asterisks: {name}: ami_port {port} is out of range")
    try:
        agi_port = int(values.get("agi_port") or 0)
    except ValueError as exc:
        raise ConfigError(f"setting asterisks: {name}: agi_port must be a number") from exc
    if not 0 <= agi_port < 65536:
        raise ConfigError(f"setting asterisks: {name}: agi_port {agi_port} is out of range")
    return AsteriskServer(
        name=name,
        site=values.get("site") or default_site or name,
        ami_host=values["ami_host"],
        ami_port=port,
        ami_user=values.get("ami_user", ""),
        ami_secret=values.get("ami_secret", ""),
        queue_log_path=values.get("queue_log_path", ""),
        queue_log_database_url=values.get("queue_log_database_url", ""),
        queue_log_table=values.get("queue_log_table") or "queue_log",
        cdr_database_url=values.get("cdr_database_url", ""),
        cdr_table=values.get("cdr_table") or "cdr",
        agi_port=agi_port,
        agi_secret=values.get("agi_secret", ""),
    )


def sites_of(servers: tuple[AsteriskServer, ...]) -> dict[str, tuple[str, ...]]:
    """Site -> the names of its Asterisks, in declaration order."""
    out: dict[str, list[str]] = {}
    for s in servers:
        out.setdefault(s.site, []).append(s.name)
    return {site: tuple(names) for site, names in out.items()}
