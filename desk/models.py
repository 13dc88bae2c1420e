"""Desk records (users, incidents, knowledge, CMDB, staff) share the journal's metadata."""

from cti.journal.models import Base

__all__ = ["Base"]
