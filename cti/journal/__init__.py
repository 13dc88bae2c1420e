"""The call journal: one record per call, as Asterisk handled it."""
