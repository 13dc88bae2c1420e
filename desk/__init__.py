"""The service desk: its records and services, one module per domain (no aiohttp here; the web
application is desk/web/)."""
