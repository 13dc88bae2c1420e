"""Log lines as text (the default) or one JSON object per line (CTI_LOG_FORMAT=json), for a
collector such as journald, Loki or Elasticsearch that reads fields rather than text."""

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Call-related lines carry linkedid=... (house rule); a collector gets it as a field of its own.
_LINKEDID = re.compile(r"\blinkedid=([^\s,;]+)")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, linkedid when
    the line names a call, and the traceback of an exception."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON (non-ASCII kept as is: 张三 stays readable)."""
        message = record.getMessage()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        found = _LINKEDID.search(message)
        if found:
            out["linkedid"] = found.group(1)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def use_format(kind: str) -> None:
    """Switch every handler of the root logger to `kind` ("text" or "json")."""
    formatter = JsonFormatter() if kind == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
