"""Typed keys for the objects the web application shares."""

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.db import SessionMaker
from cti.ivr.context import MediaPaths
from cti.ivr.prompts import Synthesizer
from cti.ivr.routes import IvrService
from cti.runtime import CtiCore
from cti.settings import Settings
from desk.agent_log import StateLog
from desk.agents import AgentService
from desk.board import WallboardService
from desk.knowledge import KnowledgeService
from desk.notify import Mailer
from desk.overflow import OverflowService
from desk.pop import PopService
from desk.web.auth import LoginLimiter
from desk.web.hub import Hub
from reports.service import Archive, Scheduler

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionMaker)
CORE = web.AppKey("core", CtiCore)
MEDIA = web.AppKey("media", MediaPaths)


@dataclass(frozen=True)
class Tts:
    """Text-to-speech for announcements, if this host has it."""

    synth: Synthesizer | None


SYNTH = web.AppKey("synth", Tts)
IVR = web.AppKey("ivr", IvrService)

HUB = web.AppKey("hub", Hub)
AGENTS = web.AppKey("agents", AgentService)
POP = web.AppKey("pop", PopService)
STATE_LOG = web.AppKey("agent_state_log", StateLog)
KNOWLEDGE = web.AppKey("knowledge", KnowledgeService)
MAILER = web.AppKey("mailer", Mailer)
LIMITER = web.AppKey("login_limiter", LoginLimiter)
# Self-service portal lookups (incident number + phone) are rate-limited like logins.
PORTAL_LIMITER = web.AppKey("portal_limiter", LoginLimiter)
WALLBOARD = web.AppKey("wallboard", WallboardService)
OVERFLOW = web.AppKey("overflow", OverflowService)
ARCHIVE = web.AppKey("report_archive", Archive)
SCHEDULER = web.AppKey("report_scheduler", Scheduler)
