"""The service-desk application: records, services and the web app (pages, API, WebSocket)."""
