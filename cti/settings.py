"""One typed settings object, from defaults, a TOML file and CTI_* environment variables.

Precedence: defaults < TOML file (`--config` or CTI_CONFIG) < environment. With no AMI setting at
all, the server uses the local sandbox instance (`cti sandbox up`) and its queue_log.
"""

import os
import re
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cti.asterisks import DEFAULT_ASTERISK, AsteriskServer, parse_asterisks, server_from
from cti.errors import ConfigError

ENV_PREFIX = "CTI_"
# Characters of a take-link signing key, at the least (secrets.token_urlsafe(32) gives 43).
MIN_SECRET_KEY = 32


@dataclass(frozen=True)
class Settings:
    """Every setting the server reads. The README documents each one as CTI_<NAME>."""

    # Storage: any SQLAlchemy async URL; empty means a SQLite file at data_dir/cti.sqlite3.
    database_url: str = ""
    data_dir: Path = Path("var")
    # HTTP (pages, REST API, WebSocket).
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # AMI. Empty host/user/secret: use the sandbox instance named `sandbox`.
    ami_host: str = ""
    ami_port: int = 5038
    ami_user: str = ""
    ami_secret: str = field(default="", repr=False)
    ami_action_timeout: float = 10.0
    ami_ping_interval: float = 5.0
    ami_ping_timeout: float = 5.0
    ami_event_queue: int = 20000
    # FastAGI server for the IVR (the dialplan's CTI_AGI_HOST/CTI_AGI_PORT point here).
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # Who may open FastAGI sessions: the Asterisk hosts (addresses, networks, host names).
    # Empty: the AMI host and this host's loopback.
    agi_allowed_hosts: tuple[str, ...] = ()
    # The shared secret every AGI URL carries (the dialplan's CTI_AGI_SECRET); empty: unchecked.
    agi_secret: str = field(default="", repr=False)
    # Asterisk's queue_log as this host sees it (shared volume); empty disables reconciliation.
    queue_log_path: str = ""
    # Or Asterisk's realtime queue_log in PostgreSQL (res_config_pgsql; logger.conf
    # queue_log_realtime_use_gmt = yes): its SQLAlchemy URL and table. Set, it wins over the
    # file, and no folder needs sharing with the Asterisk host.
    queue_log_database_url: str = field(default="", repr=False)
    queue_log_table: str = "queue_log"
    # Asterisk's CDRs in PostgreSQL (cdr_pgsql, asterisk-conf/cdr_pgsql.conf): its SQLAlchemy URL
    # and table. Set, every call Asterisk handled is reconciled, queued or not, even when the
    # IVR was unreachable too; empty: calls that never queued are known only from the IVR.
    cdr_database_url: str = field(default="", repr=False)
    cdr_table: str = "cdr"
    # The site the Asterisk above (named "main") serves; empty: "main". Reports and the wallboard
    # show figures per site.
    site: str = ""
    # More Asterisk servers, each with its own AMI link, queue_log and site (cti/asterisks.py):
    # CTI_ASTERISKS as JSON, {"east": {"site": "上海", "ami_host": "10.0.0.2", "ami_user": "cti",
    # "ami_secret": "...", "queue_log_path": "..."}}, or `[asterisks.east]` tables in the file.
    asterisks: tuple[AsteriskServer, ...] = ()
    # Run the IVR's FastAGI server (off: the dialplan sends every call straight to the queue).
    ivr_enabled: bool = True
    # The IVR's data files (menu.yaml, prompts.yaml, hours.yaml); missing ones use the defaults.
    config_dir: str = ""
    # Voicemail recordings and announcement audio: this host's path, and the same folder as
    # Asterisk sees it (a shared volume). Empty: data_dir/media, on the same host.
    media_dir: str = ""
    asterisk_media_dir: str = ""
    # Calls answered in these queues are recorded (MixMonitor; "*": every queue; empty: none),
    # into media_dir/calls, and deleted after retention_recordings_days like voicemail.
    record_queues: tuple[str, ...] = ()
    # Text-to-speech for announcements runs inside this root (the sandbox's), else on this host.
    tts_root: str = ""
    # Seconds one announcement text's synthesis may take; then it is stopped (no audio).
    tts_timeout: float = 20.0
    # The desk's area code, for local landline caller IDs without it.
    area_code: str = "10"
    # Dialplan contexts where an inbound call starts (its first priority opens a call record).
    # (cti-callback-queue: call-backs the desk places, which then queue like inbound calls.)
    inbound_contexts: tuple[str, ...] = ("cti-inbound", "cti-callback-queue")
    # The desk's local time zone: display, opening hours and report periods only.
    timezone: str = "Asia/Shanghai"
    # How often the call journal flushes to the database, in seconds (at least: see
    # cti.journal.service.WRITE_SHARE).
    journal_flush_interval: float = 0.2
    # An agent's phone as a queue member and Originate channel; {ext} is the agent's extension.
    # Empty: PJSIP/{ext} (the sandbox uses its simulated phones, Local/{ext}@sim-agent/n).
    agent_interface: str = ""
    # WebRTC softphones in the agent page (asterisk-conf/pjsip_webrtc.conf): the agents who use
    # one instead of a desk phone (their extensions; empty: nobody), Asterisk's WebSocket as the
    # agents' browsers reach it (wss://pbx.example:8089/ws), and the key each agent's SIP password
    # is derived from (cti/softphone.py; the same key wrote pjsip_webrtc.conf). The sandbox fills
    # the URL and the key.
    softphone_extensions: tuple[str, ...] = ()
    softphone_url: str = ""
    softphone_key: str = field(default="", repr=False)
    # After-call work (wrap-up) in seconds; no queue call is offered to the agent meanwhile.
    wrapup_seconds: float = 30.0
    # Staff session cookies only over HTTPS (also on whenever public_url is https://).
    secure_cookies: bool = False
    # Reverse proxies whose X-Forwarded-For names the client (addresses or networks): rate
    # limits then count per client instead of per proxy. Empty: the header is ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Signs "take this call" links; empty: a random key kept in data_dir/secret.key.
    secret_key: str = field(default="", repr=False)
    # This server's address as people reach it from IM links (empty: http://<http_host>:<port>).
    public_url: str = ""
    # Reports: service-level threshold and short-abandon limit (s), scheduled formats, retention.
    report_sl_seconds: float = 20.0
    report_short_abandon: float = 5.0
    report_formats: tuple[str, ...] = ("html", "csv", "xlsx")
    report_retention_days: int = 400
    # Write the scheduled reports (off: on demand only, e.g. on a host that only measures).
    report_schedule: bool = True
    # Progress notices by e-mail (5.2.2 e); an empty host disables them.
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_secret: str = field(default="", repr=False)
    smtp_sender: str = "helpdesk@localhost"
    smtp_starttls: bool = False
    # The desk's mailbox (3.2: requests by e-mail, replies to the desk's mail); an empty host: no
    # e-mail intake. TLS (IMAPS) unless imap_tls is off (a mail server on the same host).
    imap_host: str = ""
    imap_port: int = 993
    imap_user: str = ""
    imap_secret: str = field(default="", repr=False)
    imap_tls: bool = True
    imap_mailbox: str = "INBOX"
    # Seconds between looks at the mailbox, and at the outbox (acknowledgements of new incidents).
    mail_poll_seconds: float = 60.0
    mail_outbox_seconds: float = 5.0
    # Seconds between checks whether the desk's publications changed (then mailed to subscribers).
    mail_publish_seconds: float = 600.0
    # The desk's phone number(s) as the portal publishes them (6.4.2), e.g. "010-62345000".
    desk_phone: str = ""
    # The user directory synced from LDAP / Active Directory (desk/ldap_directory.py); an empty
    # URL: no sync. ldap:// or ldaps://host[:port].
    ldap_url: str = ""
    ldap_bind_dn: str = ""
    ldap_bind_secret: str = field(default="", repr=False)
    ldap_base_dn: str = ""
    ldap_user_filter: str = "(objectClass=person)"
    # field=attribute pairs; "a|b" takes the first attribute the entry has.
    ldap_attributes: tuple[str, ...] = (
        "employee_no=employeeNumber|employeeID",
        "name=displayName|cn",
        "department=department|departmentNumber|ou",
        "location=physicalDeliveryOfficeName|l",
        "office_phone=telephoneNumber",
        "mobile=mobile",
        "email=mail",
    )
    # Members of these groups are privileged accounts (6.2: never reset by automation): group
    # DNs separated by ";" (a DN has commas of its own).
    ldap_privileged_groups: str = ""
    # Minutes between scheduled syncs (0: on demand only, from the directory page).
    ldap_sync_minutes: int = 0
    # Staff may also log in with their directory password: the filter finds their entry.
    ldap_staff_login: bool = False
    ldap_staff_filter: str = "(uid={username})"
    ldap_timeout: float = 10.0
    # /metrics (Prometheus) for a scraper that sends `Authorization: Bearer <this>`; staff of
    # the lead role or above may read it with their login too. Empty: staff only.
    metrics_secret: str = field(default="", repr=False)
    # Log lines as text, or one JSON object per line ("json") for a log collector.
    log_format: str = "text"
    # Retention in days, applied daily by the scheduler (0: kept until deleted by hand). China's
    # PIPL asks for the shortest period the purpose needs: call records (and their IVR steps),
    # IVR steps alone, voicemail recordings, and the personal data in calls and incidents
    # (caller numbers and names, requester contacts: blanked, the records kept for the figures).
    retention_calls_days: int = 0
    retention_ivr_steps_days: int = 0
    retention_recordings_days: int = 0
    retention_personal_days: int = 0
    # Seconds between SLA sweeps: breach warnings, and closing resolved incidents nobody answered.
    sla_sweep_seconds: float = 60.0
    # Several server nodes behind one address (docs/nodes.md): the broker that carries live
    # events between them (redis://[:password@]host:port/db, Redis Streams; empty: one node, the
    # embedded in-process bus), this node's name (empty: host name and process id), and the
    # seconds between lease heartbeats and attempts (a dead owner is replaced within a few of
    # these). The nodes take turns owning every configured Asterisk's AMI link at once.
    broker_url: str = field(default="", repr=False)
    node_name: str = ""
    # Where the other nodes reach this one's HTTP server (requests only the holder of the AMI
    # links can carry out are passed on to it; empty: http://<http_host>:<http_port>, loopback
    # when http_host is a wildcard).
    node_url: str = ""
    lease_interval: float = 1.0
    # The sandbox instance used when no AMI setting is given.
    sandbox: str = "default"
    # Where the settings came from, for /healthz and the logs.
    source: str = "defaults"

    @property
    def asterisk_servers(self) -> tuple[AsteriskServer, ...]:
        """Every Asterisk: the default one ("main", from the AMI and queue_log settings) first."""
        main = AsteriskServer(
            name=DEFAULT_ASTERISK,
            site=self.site or DEFAULT_ASTERISK,
            ami_host=self.ami_host,
            ami_port=self.ami_port,
            ami_user=self.ami_user,
            ami_secret=self.ami_secret,
            queue_log_path=self.queue_log_path,
            queue_log_database_url=self.queue_log_database_url,
            queue_log_table=self.queue_log_table,
            cdr_database_url=self.cdr_database_url,
            cdr_table=self.cdr_table,
            agi_port=self.agi_port if self.ivr_enabled else 0,
            agi_secret=self.agi_secret,
        )
        return (main, *self.asterisks)

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'cti.sqlite3').resolve()}"

    @property
    def effective_media_dir(self) -> Path:
        """Where recordings and announcement audio live on this host."""
        return Path(self.media_dir) if self.media_dir else (self.data_dir / "media").resolve()

    @property
    def effective_asterisk_media_dir(self) -> str:
        """The same folder as Asterisk sees it."""
        return self.asterisk_media_dir or str(self.effective_media_dir)

    @property
    def effective_agi_allowed_hosts(self) -> tuple[str, ...]:
        """The FastAGI allow-list: as set, else the AMI host and loopback."""
        if self.agi_allowed_hosts:
            return self.agi_allowed_hosts
        return tuple(dict.fromkeys(h for h in (self.ami_host, "127.0.0.1", "::1") if h))

    @property
    def effective_agent_interface(self) -> str:
        """The agent's device pattern."""
        return self.agent_interface or "PJSIP/{ext}"

    def agent_device(self, ext: str) -> str:
        """The queue member interface / Originate channel of an agent's phone: the softphone's
        endpoint (pjsip_webrtc.conf) for an agent who uses one, else the desk phone's pattern."""
        if self.softphone_for(ext):
            return f"PJSIP/{ext}"
        return self.effective_agent_interface.replace("{ext}", ext)

    def softphone_for(self, ext: str | None) -> bool:
        """True when the agent at extension `ext` takes calls in the page's softphone."""
        return bool(ext) and ext in self.softphone_extensions

    def effective_secret_key(self) -> str:
        """The signing key (created once, readable by this user only, when not configured).

        A key shorter than MIN_SECRET_KEY characters (an empty secret.key left by a full disk, a
        hand-made one) would make take links forgeable: ConfigError, and the server does not
        start."""
        if self.secret_key:
            if len(self.secret_key) < MIN_SECRET_KEY:
                raise ConfigError(
                    f"setting secret_key: at least {MIN_SECRET_KEY} characters are needed"
                )
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            fresh = path.with_suffix(".new")
            fresh.unlink(missing_ok=True)
            with os.fdopen(os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                fh.write(secrets.token_urlsafe(32))
            fresh.replace(path)  # whole or not at all: a crash never leaves an empty key
        key = path.read_text().strip()
        if len(key) < MIN_SECRET_KEY:
            raise ConfigError(
                f"{path} holds {len(key)} characters, fewer than the {MIN_SECRET_KEY} a signing "
                "key needs: delete it to have a new one made, or set CTI_SECRET_KEY"
            )
        return key

    @property
    def effective_secure_cookies(self) -> bool:
        """Cookies only over HTTPS: when asked for, or when people reach us at an https:// URL
        (a TLS proxy in front, which this server cannot see from the request)."""
        return self.secure_cookies or self.public_url.lower().startswith("https://")

    @property
    def effective_public_url(self) -> str:
        """Where responders reach this server."""
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @property
    def effective_node_url(self) -> str:
        """Where the other nodes reach this node's HTTP server."""
        if self.node_url:
            return self.node_url.rstrip("/")
        host = "127.0.0.1" if self.http_host in ("", "0.0.0.0", "::") else self.http_host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.http_port}"

    @property
    def effective_node_name(self) -> str:
        """This node's name: as set, else the host name and process id."""
        if self.node_name:
            return self.node_name
        import socket

        return f"{socket.gethostname()}-{os.getpid()}"

    @property
    def tz(self) -> ZoneInfo:
        """The desk's time zone."""
        return ZoneInfo(self.timezone)

    def masked(self) -> dict[str, Any]:
        """Settings as a dict with secrets masked, for logs and /healthz."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "asterisks":
                value = [a.masked() for a in value]
            elif "secret" in f.name and value:
                value = "***"
            elif f.name in _URLS_WITH_PASSWORDS and "@" in value:
                scheme, _, rest = value.partition("://")
                value = f"{scheme}://***@{rest.rpartition('@')[2]}"
            out[f.name] = str(value) if isinstance(value, Path) else value
        return out


_URLS_WITH_PASSWORDS = ("database_url", "queue_log_database_url", "cdr_database_url", "broker_url")


def _coerce(name: str, raw: Any, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            if isinstance(raw, bool):
                return raw
            return str(raw).strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Path):
            return Path(str(raw))
        if isinstance(default, tuple):
            items = raw if isinstance(raw, list) else str(raw).split(",")
            return tuple(str(i).strip() for i in items if str(i).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {name}: {raw!r} is not a valid {type(default).__name__}"
        ) from exc


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".replace("-", "_").lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def load_settings(config: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Build the settings; unknown keys and malformed values raise ConfigError naming them."""
    env = dict(os.environ if env is None else env)
    defaults = Settings()
    known = {f.name: f for f in fields(Settings) if f.name != "source"}
    values: dict[str, Any] = {}
    declared: dict[str, dict[str, str]] = {}
    sources = []
    config = config or (Path(env["CTI_CONFIG"]) if env.get("CTI_CONFIG") else None)
    if config is not None:
        try:
            table = tomllib.loads(Path(config).read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {config} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {config}: {exc}") from exc
        if "asterisks" in table:
            declared.update(parse_asterisks(table.pop("asterisks")))
        for name, raw in _flatten(table).items():
            if name not in known:
                raise ConfigError(f"config file {config}: unknown setting {name!r}")
            values[name] = _coerce(name, raw, getattr(defaults, name))
        sources.append(str(config))
    for key, raw in env.items():
        if not key.startswith(ENV_PREFIX) or key == "CTI_CONFIG":
            continue
        name = key[len(ENV_PREFIX) :].lower()
        if name == "asterisks":
            declared = parse_asterisks(raw)
            sources.append(key)
        elif name in known:
            values[name] = _coerce(key, raw, getattr(defaults, name))
            sources.append(key)
    values.pop("asterisks", None)
    settings = replace(defaults, **values, source=", ".join(sources) or "defaults")
    if DEFAULT_ASTERISK in declared:
        raise ConfigError(
            f"setting asterisks: {DEFAULT_ASTERISK!r} is the Asterisk of the CTI_AMI_* settings; "
            "give the others names of their own"
        )
    extra = tuple(server_from(name, decl) for name, decl in declared.items())
    ports = [settings.agi_port, *(a.agi_port for a in extra if a.agi_port)]
    if len(set(ports)) != len(ports):
        raise ConfigError(
            "setting asterisks: each Asterisk needs an agi_port of its own (its IVR steps are "
            "known to be its calls' by the port they arrive on)"
        )
    settings = replace(settings, asterisks=extra)
    try:
        settings.tz  # noqa: B018 - validate early
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"setting timezone: unknown time zone {settings.timezone!r}") from exc
    if settings.log_format not in ("text", "json"):
        raise ConfigError(f"setting log_format: {settings.log_format!r} is not text or json")
    for f in fields(Settings):
        if f.name.startswith("retention_") and getattr(settings, f.name) < 0:
            raise ConfigError(f"setting {f.name}: days cannot be negative")
    if settings.broker_url:
        _check_nodes(settings)
    if not (settings.ami_host or settings.ami_user or settings.ami_secret):
        settings = _from_sandbox(settings)
    if settings.softphone_extensions:
        if not settings.softphone_url.lower().startswith("wss://"):
            raise ConfigError(
                "setting softphone_url: softphones need Asterisk's wss:// WebSocket address"
            )
        if len(settings.softphone_key) < MIN_SECRET_KEY:
            raise ConfigError(
                f"setting softphone_key: at least {MIN_SECRET_KEY} characters are needed "
                "(the key that wrote pjsip_webrtc.conf's passwords)"
            )
    return settings


def _check_nodes(settings: Settings) -> None:
    """Several nodes share one PostgreSQL database (the leases are its advisory locks) and a
    Redis broker; a name is letters, digits and . _ - (it goes into lock keys and the logs)."""
    if not settings.broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("setting broker_url: a redis:// (or rediss://) URL is needed")
    if not settings.database_url.startswith("postgresql"):
        raise ConfigError(
            "setting broker_url: several server nodes share one PostgreSQL database "
            "(set database_url to postgresql+asyncpg://…; SQLite is for one node)"
        )
    value = settings.node_name
    if value and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", value):
        raise ConfigError(f"setting node_name: {value!r} is not 1-64 letters, digits, . _ -")
    if not 0.1 <= settings.lease_interval <= 30:
        raise ConfigError("setting lease_interval: between 0.1 and 30 seconds")


def _from_sandbox(settings: Settings) -> Settings:
    """Fill the AMI and queue_log settings from the local sandbox instance, if there is one."""
    from cti.sandbox import Instance

    st = Instance(settings.sandbox).load()
    if st is None:
        return replace(settings, ami_host="127.0.0.1", ami_user="cti")
    return replace(
        settings,
        ami_host=st.ami_host,
        ami_port=st.ami_port,
        ami_user=st.ami_user,
        ami_secret=st.ami_secret,
        agi_port=st.agi_port,
        agi_secret=settings.agi_secret or st.agi_secret,
        queue_log_path=settings.queue_log_path or st.queue_log,
        # A sandbox started with --cdr-database writes its CDRs there: read them back.
        cdr_database_url=settings.cdr_database_url
        or re.sub(r"^postgres(ql)?://", "postgresql+asyncpg://", st.cdr_database),
        media_dir=settings.media_dir or st.media_dir,
        asterisk_media_dir=settings.asterisk_media_dir or st.asterisk_media_dir,
        tts_root=settings.tts_root or st.root,
        agent_interface=settings.agent_interface or "Local/{ext}@sim-agent/n",
        softphone_url=settings.softphone_url
        or (f"wss://127.0.0.1:{st.wss_port}/ws" if st.wss_port else ""),
        softphone_key=settings.softphone_key or st.softphone_key,
        source=f"{settings.source}, sandbox {settings.sandbox}",
    )
