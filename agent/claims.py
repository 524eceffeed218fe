"""Reading a token's claims and checking them against what is configured.

The engine never trusts ``expires_in`` from a token response: it schedules
from the token's own ``exp``. Signature verification is the consumer's job
(AWS STS checks it against the IdP's JWKS); here we only make sure the token
we are about to hand out is the one the role's trust policy expects.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from agent.errors import TokenRejected

__all__ = ["Token", "check_token", "parse_token"]


@dataclass(frozen=True)
class Token:
    """A fetched token and the claims that matter; ``repr`` never shows it."""

    value: str
    issuer: str
    audience: tuple[str, ...]
    subject: str | None
    expires_at: float
    issued_at: float

    @property
    def lifetime(self) -> float:
        return self.expires_at - self.issued_at

    def remaining(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)

    def summary(self) -> dict[str, object]:
        """Claims safe to show: never the raw token."""
        return {
            "iss": self.issuer,
            "aud": list(self.audience),
            "sub": self.subject,
            "exp": int(self.expires_at),
            "iat": int(self.issued_at),
            "lifetime_seconds": int(self.lifetime),
        }

    def __repr__(self) -> str:
        return (
            f"Token(iss={self.issuer!r}, aud={self.audience!r}, "
            f"sub={self.subject!r}, exp={int(self.expires_at)})"
        )


_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# Claims beyond this are nonsense (year 5138), and beyond time_t on some systems.
MAX_TIMESTAMP = 10**11


def _unverified_claims(value: str) -> dict[str, Any]:
    # Only the claims are read here; STS verifies the signature against the
    # IdP's JWKS. Decoding by hand keeps a crypto library (about 8 MB of the
    # sidecar's memory) out of the engine for secret-based clients.
    if not _JWT_SHAPE.fullmatch(value):
        raise ValueError("expected three dot-separated base64url parts")
    parts = value.split(".")
    decoded: list[dict[str, Any]] = []
    for part in parts[:2]:
        padded = part + "=" * (-len(part) % 4)
        value_ = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if not isinstance(value_, dict):
            raise ValueError("header and payload must be JSON objects")
        decoded.append(value_)
    return decoded[1]


def parse_token(value: str, *, source: str, received_at: float | None = None) -> Token:
    """Decode a JWT's claims without verifying its signature."""
    try:
        claims = _unverified_claims(value)
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise TokenRejected(f"token is not a valid JWT ({exc})", where=source) from exc
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenRejected("token has no numeric 'exp' claim", where=source)
    if not 0 < exp < MAX_TIMESTAMP:
        raise TokenRejected(f"token 'exp' claim is out of range: {exp}", where=source)
    iat = claims.get("iat")
    issued = (
        float(iat) if isinstance(iat, int | float) else (received_at or time.time())
    )
    aud = claims.get("aud")
    audience = (aud,) if isinstance(aud, str) else tuple(str(a) for a in aud or ())
    sub = claims.get("sub")
    return Token(
        value=value,
        issuer=str(claims.get("iss", "")),
        audience=audience,
        subject=str(sub) if sub is not None else None,
        expires_at=float(exp),
        issued_at=issued,
    )


def check_token(
    token: Token,
    *,
    source: str,
    issuer: str | None,
    audience: str | None,
    min_remaining: float,
    now: float | None = None,
) -> Token:
    """Raise TokenRejected unless iss, aud and the remaining lifetime fit."""
    if issuer is not None and token.issuer.rstrip("/") != issuer.rstrip("/"):
        hint = ""
        if "sts.windows.net" in token.issuer:
            hint = (
                " (an Entra v1 token: set accessTokenAcceptedVersion to 2 in the"
                " app manifest, or register the v1 issuer in IAM)"
            )
        raise TokenRejected(
            f"token issuer {token.issuer!r} is not the expected {issuer!r}{hint}",
            where=source,
        )
    if audience is not None and audience not in token.audience:
        raise TokenRejected(
            f"token audience {list(token.audience)!r} does not include {audience!r}",
            where=source,
        )
    remaining = token.remaining(now)
    if remaining < min_remaining:
        raise TokenRejected(
            f"token expires in {remaining:.0f}s, less than the minimum"
            f" {min_remaining:.0f}s (--min-remaining)",
            where=source,
        )
    return token
