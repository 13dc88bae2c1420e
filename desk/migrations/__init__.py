"""Alembic migrations of the whole database (call journal and desk records)."""

from pathlib import Path

MIGRATIONS = Path(__file__).parent
