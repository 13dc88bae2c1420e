"""The `cti` command: the composition root, where the core (`cti/`), the desk's services
(`desk/`), the reports and the web application are put together."""

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from cti.errors import CtiError

logger = logging.getLogger("cti")

Handler = Callable[[argparse.Namespace], int]


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    from desk.web.logs import TEXT_FORMAT

    logging.basicConfig(level=level, format=TEXT_FORMAT, stream=sys.stderr)


def cmd_sandbox(args: argparse.Namespace) -> int:
    """`cti sandbox up|down|status|restart|purge`."""
    from cti.sandbox import Instance

    inst = Instance(args.name)
    if args.action == "up":
        inst.up(ami_port=args.ami_port, sip_port=args.sip_port, agi_port=args.agi_port,
                cdr_database=args.cdr_database)  # fmt: skip
    elif args.action == "down":
        inst.down()
    elif args.action == "restart":
        inst.restart()
    elif args.action == "purge":
        inst.purge()
    status = inst.status()
    if args.json or args.action == "status":
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            for key, value in status.items():
                if key == "cdr_database" and value and "@" in str(value):
                    scheme, _, rest = str(value).partition("://")
                    value = f"{scheme}://***@{rest.rpartition('@')[2]}"
                if key not in ("ami_secret", "sim_secret", "agi_secret", "softphone_key"):
                    print(f"{key:12} {value}")
    else:
        print(f"sandbox {args.name}: {'running' if status['running'] else 'stopped'}")
    return 0


def cmd_asterisk_secrets(args: argparse.Namespace) -> int:
    """`cti asterisk-secrets CONF_DIR`: per-site secrets into a deployed Asterisk configuration."""
    import os

    from cti import softphone
    from cti.sitesecrets import new_secret, placeholders, write_site_secrets

    env = os.environ
    result = write_site_secrets(
        args.conf_dir,
        ami_secret=env.get("CTI_AMI_SECRET") or None,
        agi_secret=env.get("CTI_AGI_SECRET") or None,
        trunk_password=env.get("CTI_TRUNK_PASSWORD") or None,
    )
    for name in result.changed:
        print(f"set {name}")
    # The softphones' passwords come from a key the CTI server shares (cti/softphone.py): the one
    # given, else a new one when pjsip_webrtc.conf still has placeholders.
    soft_key = env.get("CTI_SOFTPHONE_KEY") or None
    if soft_key is None and any("pjsip_webrtc.conf" in p for p in placeholders(args.conf_dir)):
        soft_key = new_secret() + new_secret()
    if soft_key is not None:
        for ext in softphone.write_passwords(args.conf_dir, soft_key):
            print(f"set pjsip_webrtc.conf [{ext}] password")
    if args.env_file:
        # What the CTI server needs to share with this Asterisk; readable by this user only.
        args.env_file.touch(mode=0o600)
        args.env_file.chmod(0o600)
        lines = f"CTI_AMI_SECRET={result.ami_secret}\nCTI_AGI_SECRET={result.agi_secret}\n"
        if soft_key is not None:
            lines += f"CTI_SOFTPHONE_KEY={soft_key}\n"
        args.env_file.write_text(lines)
        print(f"the secrets the CTI server shares with this Asterisk: {args.env_file}")
    left = placeholders(args.conf_dir)
    if left:
        print(f"cti: placeholders left: {', '.join(left)}", file=sys.stderr)
        return 1
    print("no placeholder secret left; reload Asterisk (or restart it) to use them")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """`cti serve`: the CTI server (AMI link, call tracker, FastAGI, web)."""
    from cti import eventloop
    from cti.settings import load_settings
    from desk.web.app import run_server
    from desk.web.logs import use_format

    settings = load_settings(args.config)
    use_format(settings.log_format)
    eventloop.run(run_server(settings))  # uvloop when installed: see cti/eventloop.py
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """`cti demo`: sandbox + server + simulated traffic, until Ctrl-C."""
    from desk.web.demo import run_demo

    return int(asyncio.run(run_demo(args)))


def cmd_simulate(args: argparse.Namespace) -> int:
    """`cti simulate`: drive the sandbox with callers and agents and print a summary."""
    from cti.simulate import SimulationPlan, run_simulation_cli

    plan = SimulationPlan.from_args(args)
    return asyncio.run(run_simulation_cli(plan, args))


def cmd_user(args: argparse.Namespace) -> int:
    """`cti user import FILE`: the user directory from CSV (all or nothing)."""
    from cti.settings import load_settings
    from desk.users_cli import import_file, read

    data = read(args.file)
    return asyncio.run(import_file(load_settings(args.config), args.file, data, args.by))


def cmd_staff(args: argparse.Namespace) -> int:
    """`cti staff add|list`: desk staff and their logins."""
    from cti.settings import load_settings
    from desk.staff import run

    fields = {"username": args.username, "name": args.name or args.username, "role": args.role,
              "extension": args.extension, "queues": args.queues, "mobile": args.mobile,
              "email": args.email, "im_handle": args.im}  # fmt: skip
    return asyncio.run(run(load_settings(args.config), args.action, fields, args.password_stdin))


def cmd_report(args: argparse.Namespace) -> int:
    """`cti report KIND --date D --format F[,F]`: a report from the journal, into the archive."""
    from datetime import date

    from cti.settings import load_settings
    from reports.render import FORMATS
    from reports.service import report_cli

    try:
        day = date.fromisoformat(args.date) if args.date else date.today()
        end = date.fromisoformat(args.end) if args.end else None
    except ValueError as exc:
        print(f"cti report: {exc}", file=sys.stderr)
        return 2
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        print(f"cti report: format must be among {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    settings = load_settings(args.config)
    return asyncio.run(
        report_cli(
            settings,
            args.kind,
            day,
            formats,
            args.lang,
            args.queue,
            args.brief,
            args.out,
            end,
            args.site,
        )
    )


def cmd_backup(args: argparse.Namespace) -> int:
    """`cti backup FILE`: database, signing key and media into one archive (server may run)."""
    from cti.settings import load_settings
    from desk.backup import backup

    r = backup(load_settings(args.config), args.file, media=not args.no_media)
    print(f"{r.path}: {r.database} database (revision {r.revision or '-'}, {r.calls} calls), "
          f"{r.media_files} media files")  # fmt: skip
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """`cti restore FILE`: back into the configured database (stop the server first)."""
    from cti.settings import load_settings
    from desk.backup import restore

    r = restore(load_settings(args.config), args.file, force=args.force)
    print(
        f"restored {r.database} database (revision {r.revision or '-'}, {r.calls} calls) and "
        f"{r.media_files} media files from {r.path}; the server's next start catches up"
    )
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    """`cti retention`: apply the CTI_RETENTION_* limits now (the scheduler does it hourly)."""
    from datetime import UTC, datetime

    from cti.settings import load_settings
    from desk.retention import RetentionPolicy, run_cli

    settings = load_settings(args.config)
    policy = RetentionPolicy.from_settings(settings)
    if not policy.active:
        print("no retention limit is set (CTI_RETENTION_*_DAYS): nothing to do")
        return 0
    result = asyncio.run(run_cli(settings, policy, datetime.now(UTC)))
    print(", ".join(f"{kind} {n}" for kind, n in result.counts().items()))
    for error in result.errors:
        print(f"cti retention: {error}", file=sys.stderr)
    return 1 if result.errors else 0


def cmd_staffing(args: argparse.Namespace) -> int:
    """`cti staffing`: agents needed for one interval, by Erlang C."""
    from reports.service import staffing_cli

    try:
        print(staffing_cli(args.calls, args.interval, args.aht, args.target, args.threshold,
                           args.max_occupancy, args.shrinkage))  # fmt: skip
    except ValueError as exc:
        print(f"cti staffing: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_prompts(args: argparse.Namespace) -> int:
    """`cti prompts build`: synthesise the prompt catalogue into an Asterisk sounds folder."""
    from cti.ivr.config import load_ivr_config
    from cti.ivr.prompts import Synthesizer, build_catalogue

    cfg = load_ivr_config(args.config_dir)
    n = build_catalogue(cfg.prompts, args.sounds_dir, Synthesizer(), args.recorded)
    print(f"{n} prompt files written to {args.sounds_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every `cti` subcommand."""
    p = argparse.ArgumentParser(prog="cti", description="CTI server for IT service desks")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--config", type=Path, help="TOML settings file")
    sub = p.add_subparsers(dest="command", required=True)

    sb = sub.add_parser("sandbox", help="the Asterisk 22 sandbox")
    sb.add_argument("action", choices=["up", "down", "status", "restart", "purge"])
    sb.add_argument(
        "--name", default=None, help="instance name (default: CTI_SANDBOX or 'default')"
    )
    sb.add_argument("--json", action="store_true")
    sb.add_argument("--ami-port", type=int)
    sb.add_argument("--sip-port", type=int)
    sb.add_argument("--agi-port", type=int)
    sb.add_argument(
        "--cdr-database",
        metavar="URL",
        help="write CDRs into this PostgreSQL (postgresql://user[:password]@127.0.0.1:port/db, "
        "a table made as the README says) through cdr_pgsql; '' turns it off again",
    )
    sb.set_defaults(func=cmd_sandbox)

    ak = sub.add_parser(
        "asterisk-secrets",
        help="per-site secrets into a deployed Asterisk configuration (replaces placeholders)",
        description="Replace every placeholder secret in CONF_DIR (the AMI user's, the phones' "
        "and the trunk's passwords, the FastAGI secret) with a random one; CTI_AMI_SECRET, "
        "CTI_AGI_SECRET and CTI_TRUNK_PASSWORD in the environment are used instead when set. "
        "Secrets a site set itself are kept.",
    )
    ak.add_argument("conf_dir", type=Path, help="the Asterisk configuration, e.g. /etc/asterisk")
    ak.add_argument("--env-file", type=Path, help="write CTI_AMI_SECRET/CTI_AGI_SECRET here (0600)")
    ak.set_defaults(func=cmd_asterisk_secrets)

    sv = sub.add_parser("serve", help="run the CTI server")
    sv.set_defaults(func=cmd_serve)

    dm = sub.add_parser("demo", help="sandbox + server + simulated callers and agents")
    dm.add_argument("--calls", type=int, default=0, help="stop after N calls (0: run until Ctrl-C)")
    dm.add_argument("--rate", type=float, default=0.1, help="new calls per second")
    dm.add_argument("--name", default=None, help="sandbox instance (default: 'default')")
    dm.add_argument("--keep-sandbox", action="store_true", help="leave Asterisk running at exit")
    dm.set_defaults(func=cmd_demo)

    us = sub.add_parser("user", help="the user directory")
    us.add_argument("action", choices=["import"])
    us.add_argument("file", type=Path, help="CSV: employee_no,name,department,location,...")
    us.add_argument("--by", default="import", help="who made the change (kept in the history)")
    us.set_defaults(func=cmd_user)

    st = sub.add_parser("staff", help="desk staff (agents, leads, admins) and their logins")
    st.add_argument("action", choices=["add", "list"])
    st.add_argument("username", nargs="?", default="")
    st.add_argument("--name")
    st.add_argument("--role", default="agent", choices=["agent", "lead", "admin"])
    st.add_argument("--extension", help="the desk phone (queue member name)")
    st.add_argument("--queues", default="helpdesk", help="comma-separated queues")
    st.add_argument("--mobile")
    st.add_argument("--email")
    st.add_argument("--im", help="IM handle")
    st.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    st.set_defaults(func=cmd_staff)

    rp = sub.add_parser("report", help="clause 6.5 reports from the call journal")
    rp.add_argument("kind", choices=["daily", "weekly", "monthly", "forward", "custom"])
    rp.add_argument("--date", help="a day in the period (YYYY-MM-DD; default today)")
    rp.add_argument("--end", help="custom reports: the last day")
    rp.add_argument("--format", default="html", help="html, csv, xlsx, pdf (comma-separated)")
    rp.add_argument("--lang", default="zh", choices=["zh", "en"])
    rp.add_argument("--queue", help="only this queue")
    rp.add_argument("--brief", action="store_true", help="the brief form")
    rp.add_argument("--site", help="one site's figures (several Asterisks; default: every site)")
    rp.add_argument("--out", type=Path, help="folder (default: the archive, DATA_DIR/reports)")
    rp.set_defaults(func=cmd_report)

    bk = sub.add_parser(
        "backup",
        help="database, signing key and media into one archive (while the server runs)",
        description="SQLite through its online backup API, PostgreSQL through pg_dump. The "
        "archive holds personal data and a secret: it is created readable by you only.",
    )
    bk.add_argument("file", type=Path, help="the archive to write (.tar.gz; must not exist)")
    bk.add_argument("--no-media", action="store_true", help="leave recordings and audio out")
    bk.set_defaults(func=cmd_backup)

    rs = sub.add_parser(
        "restore",
        help="an archive from `cti backup` into the configured database (server stopped)",
        description="Refuses a database that already holds calls unless --force. On its next "
        "start the server fills in the calls that ended after the backup from queue_log.",
    )
    rs.add_argument("file", type=Path, help="an archive written by `cti backup`")
    rs.add_argument("--force", action="store_true", help="overwrite a database holding calls")
    rs.set_defaults(func=cmd_restore)

    rt = sub.add_parser("retention", help="apply the retention limits now (PIPL)")
    rt.set_defaults(func=cmd_retention)

    sf = sub.add_parser("staffing", help="agents needed for an interval (Erlang C)")
    sf.add_argument("--calls", type=float, required=True, help="calls in the interval")
    sf.add_argument("--interval", type=float, default=1800, help="seconds (default 1800)")
    sf.add_argument("--aht", type=float, required=True, help="average handle time, seconds")
    sf.add_argument("--target", type=float, default=0.8, help="service level target (0-1)")
    sf.add_argument("--threshold", type=float, default=20, help="answer within seconds")
    sf.add_argument("--max-occupancy", type=float, default=1.0)
    sf.add_argument("--shrinkage", type=float, default=0.0)
    sf.set_defaults(func=cmd_staffing)

    pr = sub.add_parser("prompts", help="IVR prompt audio")
    pr.add_argument("action", choices=["build"])
    pr.add_argument("--sounds-dir", type=Path, required=True, help="Asterisk's sounds folder")
    pr.add_argument("--recorded", type=Path, help="recorded prompts: <lang>/<name>.wav")
    pr.add_argument("--config-dir", type=Path, help="folder with a prompts.yaml of your own")
    pr.set_defaults(func=cmd_prompts)

    sm = sub.add_parser("simulate", help="simulated callers and agents against the sandbox")
    from cti.simulate import add_arguments

    add_arguments(sm)
    sm.set_defaults(func=cmd_simulate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `cti` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    if getattr(args, "name", "") is None:
        from cti.sandbox import default_instance_name

        args.name = default_instance_name()
    func: Handler = args.func
    try:
        return func(args)
    except CtiError as exc:
        print(f"cti: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
