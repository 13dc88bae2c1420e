"""Metrics and reports, computed from the call journal and the desk records only."""
