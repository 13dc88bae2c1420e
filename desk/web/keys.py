"""Typed keys for the objects the web application shares."""

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.db import SessionMaker
from cti.ivr.context import MediaPaths
from cti.ivr.prompts import Synthesizer
from cti.ivr.routes import IvrService
from cti.phone import NumberPlan
from cti.routing.config import RoutingConfig
from cti.routing.executor import RoutingExecutor
from cti.runtime import CtiCore
from cti.settings import Settings
from desk.knowledge import KnowledgeService
from desk.notify import Mailer
from desk.pop import PopBuilder
from desk.staff import PasswordVerifier
from desk.web.hub import Hub
from desk.web.limits import Limiter
from desk.web.notifier import Notifier
from desk.web.pusher import WallboardPusher
from reports.service import Archive, Scheduler

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionMaker)
CORE = web.AppKey("core", CtiCore)
MEDIA = web.AppKey("media", MediaPaths)
# The desk's numbering plan (CTI_AREA_CODE): every caller ID and typed number goes through it.
PLAN = web.AppKey("number_plan", NumberPlan)


@dataclass(frozen=True)
class Tts:
    """Text-to-speech for announcements, if this host has it."""

    synth: Synthesizer | None


SYNTH = web.AppKey("synth", Tts)
IVR = web.AppKey("ivr", IvrService)

HUB = web.AppKey("hub", Hub)
POP = web.AppKey("pop", PopBuilder)
NOTIFIER = web.AppKey("notifier", Notifier)
KNOWLEDGE = web.AppKey("knowledge", KnowledgeService)
MAILER = web.AppKey("mailer", Mailer)
LIMITER = web.AppKey("login_limiter", Limiter)
# Self-service portal lookups (incident number + phone) and requests, per address.
PORTAL_LIMITER = web.AppKey("portal_limiter", Limiter)
PASSWORDS = web.AppKey("password_verifier", PasswordVerifier)
WALLBOARD = web.AppKey("wallboard", WallboardPusher)
ROUTING = web.AppKey("routing", RoutingExecutor)
ROUTING_CONFIG = web.AppKey("routing_config", RoutingConfig)
ARCHIVE = web.AppKey("report_archive", Archive)
SCHEDULER = web.AppKey("report_scheduler", Scheduler)
