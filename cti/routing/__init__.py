"""Queue back-up detection and overflow routing: pure decisions (rules.py) and their settings."""
