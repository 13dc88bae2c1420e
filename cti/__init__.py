"""CTI server for IT service desks on Asterisk (Q/SY 1331.2-2010 热线帮助)."""

__version__ = "0.1.0"
