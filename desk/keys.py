"""Typed keys for the objects the web application shares."""

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.db import SessionMaker
from cti.runtime import CtiCore
from cti.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
ENGINE = web.AppKey("engine", AsyncEngine)
SESSIONS = web.AppKey("sessions", SessionMaker)
CORE = web.AppKey("core", CtiCore)
