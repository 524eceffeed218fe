"""Logging set-up with a redaction filter that makes leaking a secret impossible.

Every record passes through :class:`RedactingFilter` on the way out: it masks
anything shaped like a JWT and every value registered with
:func:`register_secret` (client secrets, private keys, tokens as they are
fetched), in the message, its arguments and any traceback text.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from datetime import UTC, datetime

__all__ = ["RedactingFilter", "configure", "redact", "register_secret"]

MASK = "[redacted]"

# header.payload.signature, each base64url; JWT headers always start "eyJ".
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")

_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Mask ``value`` in every log line from now on (short values are ignored).

    The forms in which a request carries it are masked too (form- and
    URL-encoded), since an IdP may echo a request back in an error.
    """
    from urllib.parse import quote, quote_plus

    value = value.strip()
    if len(value) >= 6:
        with _lock:
            _secrets.update({value, quote(value, safe=""), quote_plus(value)})
            for line in value.splitlines():
                if len(line.strip()) >= 16:
                    _secrets.add(line.strip())


def redact(text: str) -> str:
    """Return ``text`` with JWT-shaped strings and registered secrets masked."""
    text = _JWT.sub(MASK, text)
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Render each record's message once, masked, and drop its raw arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            formatter = logging.Formatter()
            record.exc_text = redact(formatter.formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extra fields."""

    _standard = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._standard and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exception"] = record.exc_text
        return redact(json.dumps(payload, default=str))


def configure(level: str = "info", fmt: str = "text") -> None:
    """Send logs to stderr through the redaction filter; idempotent."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_webid", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._webid = True  # type: ignore[attr-defined]
    handler.addFilter(RedactingFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
        )
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log request bodies or headers at debug level stay at info.
    for noisy in ("urllib3", "msal", "docker", "botocore", "hcl2", "lark"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
