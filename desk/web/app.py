"""The web application factory and `cti serve`."""

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import text

from cti.db import create_engine, migrate, session_maker
from cti.errors import Conflict, CtiError, InvalidInput, NotFound
from cti.ivr.agi import AgiAccess
from cti.ivr.config import load_ivr_config, pick
from cti.ivr.context import IvrContext, MediaPaths
from cti.ivr.hours import load_hours
from cti.ivr.prompts import Synthesizer
from cti.ivr.routes import IvrService
from cti.phone import NumberPlan
from cti.routing.config import LiveRouting, load_routing, parse_routing, routing_path
from cti.routing.executor import RoutingExecutor
from cti.runtime import CtiCore
from cti.sandbox.root import chroot_prefix
from cti.settings import Settings
from desk import hours as desk_hours
from desk import settings_docs
from desk.i18n import LANGUAGES, translations
from desk.ivr_port import DeskService
from desk.knowledge import KnowledgeService
from desk.mail.links import Links
from desk.migrations import MIGRATIONS
from desk.notify import Mailer, SmtpSettings
from desk.oncall import OncallRoster
from desk.pop import PopBuilder
from desk.staff import PasswordVerifier, load_session
from desk.web import (
    agent,
    alerts,
    announcements,
    audit,
    calls,
    catalogue,
    console,
    directory,
    hours,
    incidents,
    knowledge,
    mail,
    media,
    metrics,
    openapi,
    overflow,
    pages,
    portal,
    recordings,
    reports,
    routing,
    softphone,
    staff,
    supervise,
    take,
    transfer,
    wallboard,
)
from desk.web.auth import (
    COOKIE,
    STAFF,
    WEB_SESSION,
    check_csrf,
    security_headers,
    session_check,
)
from desk.web.forward import owner_middleware
from desk.web.hub import Hub
from desk.web.keys import (
    ARCHIVE,
    CORE,
    CORES,
    ENGINE,
    HOURS_SEED,
    HUB,
    IVR,
    KNOWLEDGE,
    LIMITER,
    LINKS,
    MAIL,
    MAILER,
    MEDIA,
    NOTIFIER,
    PASSWORDS,
    PLAN,
    POP,
    PORTAL_LIMITER,
    ROUTING,
    ROUTING_CONFIG,
    SCHEDULER,
    SESSIONS,
    SETTINGS,
    SYNTH,
    WALLBOARD,
    Tts,
)
from desk.web.limits import Limiter
from desk.web.nodes import NODE, Node
from desk.web.notifier import Notifier
from desk.web.pusher import WallboardPusher
from desk.web.validation import input_middleware
from reports.service import Archive, Scheduler
from reports.wallboard import HandleTimeCache, MetricSettings

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Our errors become JSON with a clear message; nothing else leaks a traceback."""
    try:
        return await handler(request)
    except CtiError as exc:
        status = next((code for cls, code in _STATUS.items() if isinstance(exc, cls)), 500)
        if status == 500:
            logger.exception("request %s %s failed", request.method, request.path)
        return web.json_response({"error": type(exc).__name__, "message": str(exc)}, status=status)


_UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Who is logged in (from the session cookie), and the CSRF check for their unsafe requests.

    Only for the staff application's own routes: a sub-application (the portal, take links)
    carries its own policy, and a handler that checks its own credentials (the login) says so.
    """
    sid = request.cookies.get(COOKIE)
    if sid and len(request.match_info.apps) == 1:
        async with request.app[SESSIONS]() as session:
            found = await load_session(session, sid)
        if found is not None:
            request[STAFF], request[WEB_SESSION] = found
            exempt = getattr(request.match_info.handler, "csrf_exempt", False)
            if request.method in _UNSAFE and not exempt:
                supplied = request.headers.get("X-CSRF-Token")
                if supplied is None and request.content_type in (
                    "application/x-www-form-urlencoded",
                    "multipart/form-data",
                ):
                    supplied = str((await request.post()).get("csrf", ""))
                check_csrf(request, supplied)
    return await handler(request)


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    security_headers(response)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    """The engine and session factory; the schema is migrated before anything else runs."""
    engine = create_engine(app[SETTINGS].effective_database_url)
    await migrate(engine, MIGRATIONS)
    app[ENGINE] = engine
    app[SESSIONS] = session_maker(engine)
    yield
    await engine.dispose()


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hub's recheck of login sessions stops before the database does."""
    yield
    await app[HUB].close()


def _synthesizer(settings: Settings) -> Synthesizer | None:
    try:
        if settings.tts_root:
            root = Path(settings.tts_root)
            return Synthesizer(root, chroot_prefix(root), timeout=settings.tts_timeout)
        return Synthesizer(timeout=settings.tts_timeout)
    except CtiError as exc:
        logger.warning("announcements will have no audio: %s", exc)
        return None


async def media_ctx(app: web.Application) -> AsyncIterator[None]:
    """Where recordings and announcement audio go, and the text-to-speech for announcements."""
    s = app[SETTINGS]
    media = MediaPaths(s.effective_media_dir, s.effective_asterisk_media_dir)
    for sub in ("recordings", "announcements", "calls"):
        (media.host / sub).mkdir(parents=True, exist_ok=True)
    app[MEDIA] = media
    app[SYNTH] = Tts(_synthesizer(s))
    yield


async def console_ctx(app: web.Application) -> AsyncIterator[None]:
    """What the lead edits in the browser: the opening hours (seeded from hours.yaml on the
    first start) with the after-hours prompt that states them, and routing.yaml's edit (the
    database's copy wins over the file once the lead has saved one)."""
    s = app[SETTINGS]
    config_dir = Path(s.config_dir) if s.config_dir else None
    app[HOURS_SEED] = load_hours(pick(config_dir, "hours.yaml"))
    async with app[SESSIONS].begin() as session:
        await desk_hours.seed(session, app[HOURS_SEED], datetime.now(UTC))
        stored = await settings_docs.get(session, settings_docs.ROUTING)
    if stored is not None:
        text = str(stored.value.get("text", ""))
        try:
            app[ROUTING_CONFIG].replace(parse_routing(text, "routing (database)"), text, "database")
        except CtiError as exc:
            logger.error("the routing saved from the page is invalid, using the file: %s", exc)
        else:
            logger.warning("routing: the version saved from the page is in force, not the file")
    task = asyncio.create_task(hours_prompts(app), name="hours-prompts")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def hours_prompts(app: web.Application) -> None:
    """Make the after-hours prompt for the stored hours if it is missing (first start, a new
    text-to-speech); the IVR plays the catalogue's prompt meanwhile."""
    async with app[SESSIONS]() as session:
        found, prompts = await desk_hours.load(session, app[HOURS_SEED])
    if len(prompts) == 2:
        return
    made = await desk_hours.synthesise(found, app[SYNTH].synth, app[MEDIA])
    async with app[SESSIONS].begin() as session:
        current, _ = await desk_hours.load(session, app[HOURS_SEED])
        if current == found:
            await desk_hours.attach_prompts(session, made)


async def reports_ctx(app: web.Application) -> AsyncIterator[None]:
    """Scheduled reports into the archive (6.5.5)."""
    scheduler = Scheduler(app[SESSIONS], app[SETTINGS], app[ARCHIVE])
    if app[SETTINGS].report_schedule:
        scheduler.start()
    app[SCHEDULER] = scheduler
    yield
    await scheduler.close()


async def passwords_ctx(app: web.Application) -> AsyncIterator[None]:
    """The threads that check login passwords (argon2), off the event loop."""
    app[PASSWORDS] = PasswordVerifier()
    yield
    app[PASSWORDS].close()


async def desk_ctx(app: web.Application) -> AsyncIterator[None]:
    """Knowledge matching and e-mail notices."""
    s = app[SETTINGS]
    app[KNOWLEDGE] = KnowledgeService(app[SESSIONS])
    await app[KNOWLEDGE].warm()
    app[LINKS] = Links(s.effective_secret_key(), s.effective_public_url)
    app[MAILER] = Mailer(
        SmtpSettings(
            s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_secret, s.smtp_sender, s.smtp_starttls
        ),
        app[LINKS],
    )
    app[POP] = PopBuilder(app[SESSIONS], app[KNOWLEDGE], app[PLAN])
    yield
    await app[KNOWLEDGE].close()


def _metrics(s: Settings) -> MetricSettings:
    return MetricSettings(s.report_sl_seconds, s.report_short_abandon)


async def core_ctx(app: web.Application) -> AsyncIterator[None]:
    """Each Asterisk's AMI link, live state (calls, agents, queues), bus and journal (one
    CtiCore per Asterisk, the default one first); the pages are told what happens (a notifier
    per core), the wallboard is pushed across them all."""
    s = app[SETTINGS]
    cores = [CtiCore(s, app[SESSIONS], server=server) for server in s.asterisk_servers]
    notifiers = [Notifier(core.bus, app[HUB], app[POP]) for core in cores]
    routing = app[ROUTING_CONFIG]
    board = WallboardPusher(
        app[SESSIONS], cores, app[HUB], s.tz, _metrics(s), routing.current.thresholds
    )
    routing.listen(lambda config: setattr(board, "thresholds", config.thresholds))
    # Supervision works on the default Asterisk (desk/web/supervise.py).
    reaper = supervise.SpyReaper(cores[0].bus, cores[0].client, s.agent_device)
    started: list[CtiCore] = []
    try:
        for core in cores:
            await core.start()
            started.append(core)
    except BaseException:
        await reaper.close()
        for core in reversed(started):
            await core.stop()
        raise
    board.start()
    app[CORE], app[NOTIFIER], app[WALLBOARD] = cores[0], notifiers[0], board
    app[CORES] = {core.server.name: core for core in cores}
    app[supervise.REAPER] = reaper
    yield
    await board.close()
    await reaper.close()
    for notifier in notifiers:
        await notifier.close()
    for core in reversed(cores):
        await core.stop()


def make_executor(app: web.Application, core: CtiCore) -> RoutingExecutor:
    """The routing executor on this core: back-up alerts, overflow to mobiles and IM, call-backs."""
    s = app[SETTINGS]
    return RoutingExecutor(
        sessions=app[SESSIONS],
        bus=core.bus,
        client=core.client,
        tracker=core.tracker,
        agents=core.agents,
        queues=core.queues,
        routing=app[ROUTING_CONFIG].current,
        roster=OncallRoster(app[SESSIONS]),
        handle_times=HandleTimeCache(app[SESSIONS], s.tz, _metrics(s)),
        secret=s.effective_secret_key(),
        public_url=s.effective_public_url,
        device=s.agent_device,
    )


async def routing_ctx(app: web.Application) -> AsyncIterator[None]:
    """The routing executor: back-up alerts, overflow to mobiles and IM, call-backs."""
    executor = make_executor(app, app[CORE])
    await executor.start()
    app[ROUTING_CONFIG].listen(executor.apply)
    app[ROUTING] = executor
    yield
    await executor.close()


async def nodes_ctx(app: web.Application) -> AsyncIterator[None]:
    """One of several nodes (CTI_BROKER_URL): live events through the broker; the AMI link,
    overflow and the scheduler wherever this node holds their leases (desk/web/nodes.py)."""
    node = Node(app, make_executor, _metrics(app[SETTINGS]))

    async def agent_state(payload: dict[str, Any]) -> dict[str, Any]:
        ext, queues, body = payload.get("ext"), payload.get("queues"), payload.get("body")
        if not isinstance(ext, str) or not isinstance(queues, list) or not isinstance(body, dict):
            raise InvalidInput("a malformed agent state request")
        return await agent.apply_state(app, ext, [str(q) for q in queues], body)

    async def agent_live(payload: dict[str, Any]) -> dict[str, Any]:
        ext = payload.get("ext")
        if not isinstance(ext, str) or not ext:
            raise InvalidInput("a malformed agent request")
        return await agent.live_of(app, ext)

    async def address(_payload: dict[str, Any]) -> str:
        return app[SETTINGS].effective_node_url

    node.answers("agent_state", agent_state)
    node.answers("address", address)
    node.answers("agent_live", agent_live)
    await node.start()
    app[NODE] = node
    yield
    await node.close()


async def ivr_ctx(app: web.Application) -> AsyncIterator[None]:
    """The FastAGI server running the IVR (its data files are validated here, at start)."""
    s = app[SETTINGS]
    cfg = load_ivr_config(Path(s.config_dir) if s.config_dir else None)
    plan = app[PLAN]
    desk = DeskService(
        app[SESSIONS],
        plan,
        s.tz,
        fallback_hours=cfg.hours,
        on_voicemail=lambda number, category: alerts.to_desk(app, "voicemail", number, category),
    )
    ctx = IvrContext(
        cfg.menu, cfg.prompts, cfg.hours, desk, plan, app[MEDIA], record_queues=s.record_queues
    )
    callbacks = app[ROUTING].callbacks if ROUTING in app else None
    access = AgiAccess(s.effective_agi_allowed_hosts, s.agi_secret)
    service = IvrService(s.agi_host, s.agi_port, ctx, app[SESSIONS], callbacks, access)
    # The other Asterisks' IVR: a FastAGI port each, so their steps are journaled as theirs
    # (call-backs are booked on the default Asterisk only).
    others = [
        IvrService(
            s.agi_host,
            a.agi_port,
            ctx,
            app[SESSIONS],
            None,
            AgiAccess(
                s.agi_allowed_hosts or (a.ami_host, "127.0.0.1", "::1"),
                a.agi_secret or s.agi_secret,
            ),
            asterisk=a.name,
        )
        for a in s.asterisks
        if a.agi_port
    ]
    started: list[IvrService] = []
    try:
        for ivr in (service, *others):
            await ivr.start()
            started.append(ivr)
    except BaseException:
        for ivr in started:
            await ivr.stop()
        raise
    app[IVR] = service
    yield
    for ivr in reversed(started):
        await ivr.stop()


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 when AMI and the database are up, 503 otherwise. Anyone (a load
    balancer, a container healthcheck) gets {"ok": ...} alone; logged-in staff also get the AMI
    link, journal and database state (hosts, paths and errors are not for strangers)."""
    db_ok, db_error = True, ""
    started = time.perf_counter()
    try:
        async with request.app[SESSIONS]() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:
        db_ok, db_error = False, f"{type(exc).__name__}: {exc}"
    node = request.app.get(NODE)
    if node is not None:
        # One of several nodes: it serves while it reaches the database and the broker; the AMI
        # links are up on the node that holds their lease (in the staff view below).
        ok = db_ok and node.broker.stats.connected
    else:
        # The default Asterisk's link decides (another site's outage is listed, not fatal here).
        ok = db_ok and CORE in request.app and request.app[CORE].client.connected
    status = 200 if ok else 503
    if request.get(STAFF) is None:
        return web.json_response({"ok": ok}, status=status)
    body: dict[str, object] = {
        "database": {
            "ok": db_ok,
            "url": request.app[SETTINGS].masked()["database_url"] or "sqlite (embedded)",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "error": db_error,
        }
    }
    if CORE in request.app:
        body.update(request.app[CORE].health())
    if CORES in request.app and len(request.app[CORES]) > 1:
        body["asterisks"] = {name: core.health() for name, core in request.app[CORES].items()}
    if node is not None:
        body["node"] = node.health()
    if MAIL in request.app:
        body["mail"] = {"errors": dict(request.app[MAIL].errors)}  # mailbox, outbox, publish
    body["ok"] = ok
    return web.json_response(body, status=status)


def create_app(settings: Settings, *, with_core: bool = True) -> web.Application:
    """Build the application; long-lived resources start in order and stop in reverse."""
    for lang in LANGUAGES:
        translations(lang)  # a broken catalogue stops the start, not a page later
    app = web.Application(
        middlewares=[error_middleware, input_middleware, session_middleware, owner_middleware],
        client_max_size=1 << 20,
    )
    app[SETTINGS] = settings
    app[PLAN] = NumberPlan(area_code=settings.area_code)
    app[HUB] = Hub(session_check(app))
    app[LIMITER] = Limiter()
    app[PORTAL_LIMITER] = Limiter()
    app[ARCHIVE] = Archive(settings.data_dir / "reports", settings.report_retention_days)
    app.on_response_prepare.append(_headers)
    if with_core:
        settings.effective_secret_key()  # a missing or short signing key stops the start here
    # Checked here, before anything starts: an error names the file and line.
    config_dir = Path(settings.config_dir) if settings.config_dir else None
    path = routing_path(config_dir)
    app[ROUTING_CONFIG] = LiveRouting(
        load_routing(config_dir), path.read_text(encoding="utf-8"), str(path)
    )
    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(hub_ctx)
    app.cleanup_ctx.append(passwords_ctx)
    app.cleanup_ctx.append(media_ctx)
    app.cleanup_ctx.append(console_ctx)
    app.cleanup_ctx.append(directory.ldap_ctx)
    app.cleanup_ctx.append(desk_ctx)
    app.cleanup_ctx.append(alerts.sla_ctx)
    if with_core and settings.broker_url:
        app.cleanup_ctx.append(nodes_ctx)
        if settings.ivr_enabled:
            app.cleanup_ctx.append(ivr_ctx)
    elif with_core:
        app.cleanup_ctx.append(core_ctx)
        app.cleanup_ctx.append(routing_ctx)
        if settings.ivr_enabled:
            app.cleanup_ctx.append(ivr_ctx)
        app.cleanup_ctx.append(reports_ctx)
    app.router.add_get("/healthz", healthz)
    for module in (
        calls,
        announcements,
        agent,
        softphone,
        incidents,
        media,
        catalogue,
        knowledge,
        mail,
        pages,
        portal,
        wallboard,
        overflow,
        reports,
        take,
        console,
        staff,
        directory,
        hours,
        routing,
        audit,
        recordings,
        supervise,
        transfer,
        openapi,
        metrics,
    ):
        module.setup(app)
    return app


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Run the server while the context is open; yields its URL."""
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.http_host, settings.http_port)
        await site.start()
        url = f"http://{settings.http_host}:{settings.http_port}/"
        logger.warning("CTI server listening on %s (settings: %s)", url, settings.source)
        yield url
    finally:
        await runner.cleanup()


async def run_server(settings: Settings) -> None:
    """`cti serve`: serve until SIGINT/SIGTERM."""
    stop = stop_on_signals()
    async with serving(settings):
        await stop.wait()
