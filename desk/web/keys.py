"""Typed keys for the objects the web application shares."""

from dataclasses import dataclass

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.db import SessionMaker
from cti.ivr.context import MediaPaths
from cti.ivr.hours import OpeningHours
from cti.ivr.prompts import Synthesizer
from cti.ivr.routes import IvrService
from cti.phone import NumberPlan
from cti.routing.config import LiveRouting
from cti.routing.executor import RoutingExecutor
from cti.runtime import CtiCore
from cti.settings import Settings
from desk.knowledge import KnowledgeService
from desk.ldap_directory import LdapConfig, LdapLogin
from desk.mail.links import Links
from desk.mail.poller import MailPoller
from desk.notify import Mailer
from desk.pop import PopBuilder
from desk.staff import PasswordVerifier
from desk.web.hub import Hub
from desk.web.limits import Limiter
from desk.web.notifier import Notifier
from desk.web.pusher import Board
from reports.service import Archive, Scheduler

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionMaker)
# The default Asterisk's core ("main"), and every Asterisk's by name (cti/asterisks.py).
CORE = web.AppKey("core", CtiCore)
CORES = web.AppKey("cores", dict[str, CtiCore])
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
# The mail job: the desk's mailbox in, acknowledgements out, publications to subscribers.
MAIL = web.AppKey("mail", MailPoller)
# Signed links in the desk's e-mails (confirm or reopen an incident, subscriptions).
LINKS = web.AppKey("mail_links", Links)
LIMITER = web.AppKey("login_limiter", Limiter)
# Self-service portal lookups (incident number + phone) and requests, per address.
PORTAL_LIMITER = web.AppKey("portal_limiter", Limiter)
PASSWORDS = web.AppKey("password_verifier", PasswordVerifier)
WALLBOARD = web.AppKey("wallboard", Board)
ROUTING = web.AppKey("routing", RoutingExecutor)
# The routing configuration in force: routing.yaml, or the lead's edit of it in the database.
ROUTING_CONFIG = web.AppKey("routing_config", LiveRouting)
ARCHIVE = web.AppKey("report_archive", Archive)
# hours.yaml: the opening hours' first-start seed, and the fallback (desk/hours.py).
HOURS_SEED = web.AppKey("hours_seed", OpeningHours)
SCHEDULER = web.AppKey("report_scheduler", Scheduler)
# The LDAP / AD directory (desk/ldap_directory.py), when CTI_LDAP_URL is set; staff login
# against it when CTI_LDAP_STAFF_LOGIN is also on.
LDAP = web.AppKey("ldap", LdapConfig)
LDAP_LOGIN = web.AppKey("ldap_login", LdapLogin)
