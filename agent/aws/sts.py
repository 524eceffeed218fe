"""STS ``AssumeRoleWithWebIdentity``: one call, and its failures in plain words.

:func:`assume_role_with_web_identity` trades a web identity token for role
credentials through botocore (unsigned: the token is the only proof needed, so
no AWS credentials are looked up and a profile that itself runs
``webid-agent aws credential-process`` cannot recurse). botocore is imported
inside the call, so importing this module costs nothing on the warm path of
``credential-process``.

Every refusal becomes an :class:`StsRefused` (a :class:`StsError`) whose message
says what STS answered and what to check: the IAM OIDC provider, the token's
audience, the trust policy, the role's maximum session, this machine's clock.
Transport failures become an :class:`StsError` naming the endpoint.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import logging
import os
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

from agent.config import check_url
from agent.errors import ConfigError, StsError
from agent.logsetup import register_secret

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_REGION",
    "DEFAULT_SESSION_NAME",
    "ENV_ENDPOINT_URL_STS",
    "Credentials",
    "StsRefused",
    "assume_role_with_web_identity",
    "explain_refusal",
    "format_expiration",
    "parse_expiration",
    "resolve_endpoint_url",
]

log = logging.getLogger(__name__)

DEFAULT_SESSION_NAME = "webid-agent"
DEFAULT_REGION = "us-east-1"
DEFAULT_DURATION = 3600
ENV_ENDPOINT_URL_STS = "AWS_ENDPOINT_URL_STS"
ENV_ENDPOINT_URL = "AWS_ENDPOINT_URL"

# Differences between this machine's clock and STS's beyond this are named.
CLOCK_SKEW_LIMIT = 300.0

_ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def format_expiration(timestamp: float) -> str:
    """A Unix time as the ISO 8601 UTC string SDKs expect (``...Z``)."""
    return time.strftime(_ISO_FORMAT, time.gmtime(timestamp))


def parse_expiration(value: str) -> float:
    """The inverse of :func:`format_expiration`; ValueError if malformed."""
    return float(calendar.timegm(time.strptime(value, _ISO_FORMAT)))


@dataclass(frozen=True)
class Credentials:
    """Temporary role credentials; ``repr`` shows only the key id and expiry."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: float
    assumed_role_arn: str | None = None

    def remaining(self, now: float | None = None) -> float:
        """Seconds until the credentials expire."""
        return self.expiration - (time.time() if now is None else now)

    def credential_process(self) -> dict[str, object]:
        """The JSON an SDK reads from a ``credential_process`` command."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": format_expiration(self.expiration),
        }

    def container(self) -> dict[str, object]:
        """The JSON an SDK reads from ``AWS_CONTAINER_CREDENTIALS_FULL_URI``."""
        body: dict[str, object] = {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": format_expiration(self.expiration),
        }
        if self.assumed_role_arn:
            body["RoleArn"] = self.assumed_role_arn
        return body

    def to_dict(self) -> dict[str, object]:
        """A plain mapping for the on-disk cache (see :meth:`from_dict`)."""
        return {
            "access_key_id": self.access_key_id,
            "secret_access_key": self.secret_access_key,
            "session_token": self.session_token,
            "expiration": self.expiration,
            "assumed_role_arn": self.assumed_role_arn,
        }

    @classmethod
    def from_dict(cls, data: object) -> Credentials:
        """Rebuild from :meth:`to_dict`; ValueError on any malformed field."""
        if not isinstance(data, dict):
            raise ValueError("credentials are not a mapping")
        strings = ("access_key_id", "secret_access_key", "session_token")
        if not all(isinstance(data.get(k), str) and data[k] for k in strings):
            raise ValueError("credentials miss a key")
        expiration = data.get("expiration")
        if not isinstance(expiration, int | float) or isinstance(expiration, bool):
            raise ValueError("credentials have no numeric expiration")
        arn = data.get("assumed_role_arn")
        return cls(
            access_key_id=data["access_key_id"],
            secret_access_key=data["secret_access_key"],
            session_token=data["session_token"],
            expiration=float(expiration),
            assumed_role_arn=arn if isinstance(arn, str) else None,
        )


class StsRefused(StsError):
    """STS answered with an error; ``code`` is its error code, ``detail`` its
    own message (the explained one is the exception's message).

    ``retryable`` is true for failures that may pass on a later attempt
    (throttling, STS unable to reach the IdP's keys, a 5xx).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        detail: str = "",
        retryable: bool = False,
        where: str | None = None,
    ) -> None:
        self.code = code
        self.detail = detail
        self.retryable = retryable
        super().__init__(message, where=where)


def resolve_endpoint_url(endpoint_url: str | None) -> str | None:
    """The STS endpoint to use: the argument, else ``AWS_ENDPOINT_URL_STS``,
    else ``AWS_ENDPOINT_URL``, else None (botocore's regional default)."""
    return (
        endpoint_url
        or os.environ.get(ENV_ENDPOINT_URL_STS)
        or os.environ.get(ENV_ENDPOINT_URL)
        or None
    )


def _token_claims(token: str) -> dict[str, Any]:
    """The token's payload without verification, for explanations only."""
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return data if isinstance(data, dict) else {}


def _clock_skew(headers: dict[str, str], now: float) -> float | None:
    """Seconds this machine's clock is ahead of STS (negative: behind)."""
    value = headers.get("date")
    if not value:
        return None
    try:
        server = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return now - server


def explain_refusal(
    code: str,
    message: str,
    *,
    claims: dict[str, Any],
    role_arn: str,
    skew: float | None = None,
) -> str:
    """STS's error code and message, followed by what to check, in plain words.

    Each explanation opens with the kind of fault (``audience not allowed``,
    ``clock skew``, ``not authorized``...) so the first words say what broke.
    """
    issuer = str(claims.get("iss", "?"))
    aud = claims.get("aud")
    audience = ", ".join(aud) if isinstance(aud, list) else str(aud or "?")
    lower = message.lower()
    hint: str

    # the token itself: signature, audience, issuer registration
    if code == "InvalidIdentityToken":
        if "audience" in lower:
            hint = (
                f"audience not allowed: the token's audience ({audience}) is not in"
                f" the client id list of the IAM OIDC provider for {issuer}; add it"
                " there, or request the audience IAM expects (--audience/--scope)"
            )
        elif "openidconnect provider" in lower or "no oidc provider" in lower:
            hint = (
                f"no IAM OIDC provider for the issuer {issuer} in the role's"
                " account; create one (webid-agent aws trust-policy prints its"
                " settings)"
            )
        elif "verification key" in lower or "thumbprint" in lower or "jwks" in lower:
            hint = (
                f"invalid identity token: STS could not fetch or match the signing"
                f" keys of {issuer}; check that its jwks_uri is reachable from the"
                " internet over trusted TLS and that the token's kid is published"
                " there"
            )
        elif "before" in lower or "nbf" in lower or "iat" in lower:
            hint = (
                "clock skew: the token was issued in STS's future (iat/nbf ahead of"
                " AWS time); this machine's or the IdP's clock is ahead"
            )
        else:
            hint = (
                f"invalid identity token: STS does not accept tokens from {issuer}"
                f" (audience {audience}); check the IAM OIDC provider's URL and"
                " client ids"
            )
    elif code == "ExpiredTokenException":
        hint = (
            "expired token: the token had expired when STS checked it; if it was"
            " fresh here, this machine's clock is behind (check NTP)"
        )
    elif code in ("AccessDenied", "AccessDeniedException"):
        hint = (
            f"not authorized: the trust policy of {role_arn} does not allow"
            f" sts:AssumeRoleWithWebIdentity for issuer {issuer},"
            f" audience {audience}, subject {claims.get('sub', '?')}; compare its"
            " Principal.Federated and :aud/:sub conditions with these claims,"
            " and check that the role exists"
        )
    elif code == "IDPRejectedClaim":
        hint = "claim rejected: STS does not accept a claim of the token"
    elif code == "IDPCommunicationError":
        hint = (
            f"STS could not reach {issuer} to fetch its signing keys; it may be"
            " down or not reachable from the internet (retry later)"
        )
    elif code in ("ValidationError", "InvalidParameterValue"):
        if "duration" in lower:
            hint = (
                "the requested --duration exceeds the role's maximum session"
                " duration (1 hour unless raised on the role)"
            )
        else:
            hint = "a request parameter is invalid (role ARN or --session-name)"
    elif code == "RegionDisabledException":
        hint = "STS is not activated in this region for the account (--region)"
    elif code in ("Throttling", "ThrottlingException", "RequestLimitExceeded"):
        hint = "STS is throttling requests; retry later"
    else:
        hint = "see the message from STS"
    text = f"STS refused AssumeRoleWithWebIdentity ({code}: {message}): {hint}"
    if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT:
        direction = "ahead of" if skew > 0 else "behind"
        text += f"; note: this machine's clock is {abs(skew):.0f}s {direction} STS"
    return text


_RETRYABLE = {
    "IDPCommunicationError",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
}


def assume_role_with_web_identity(
    token: str,
    role_arn: str,
    *,
    session_name: str = DEFAULT_SESSION_NAME,
    region: str | None = None,
    endpoint_url: str | None = None,
    duration: int | None = None,
    timeout: float = 10.0,
) -> Credentials:
    """Trade ``token`` for ``role_arn``'s credentials; raise StsError on failure.

    ``endpoint_url`` defaults to ``AWS_ENDPOINT_URL_STS`` (then
    ``AWS_ENDPOINT_URL``), else botocore's endpoint for ``region``. The
    region defaults to the environment or profile, else us-east-1.
    """
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    # build an unsigned client for the chosen endpoint
    endpoint = resolve_endpoint_url(endpoint_url)
    where = endpoint or f"sts.{region or 'default region'}"
    if endpoint:
        check_url(endpoint, "--sts-endpoint-url")
    try:
        session = botocore.session.Session()
        region_name = region or session.get_config_variable("region") or DEFAULT_REGION
        client = session.create_client(
            "sts",
            region_name=region_name,
            endpoint_url=endpoint,
            config=Config(
                signature_version=UNSIGNED,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"mode": "standard", "max_attempts": 3},
            ),
        )
    except (BotoCoreError, ValueError) as exc:
        # botocore refuses a malformed region or endpoint here: bad input
        raise ConfigError(
            f"cannot set up the STS client: {exc}", where="--region/--sts-endpoint-url"
        ) from exc
    where = str(client.meta.endpoint_url)

    # call AssumeRoleWithWebIdentity
    params: dict[str, Any] = {
        "RoleArn": role_arn,
        "RoleSessionName": session_name,
        "WebIdentityToken": token,
    }
    if duration is not None:
        params["DurationSeconds"] = int(duration)
    try:
        response = client.assume_role_with_web_identity(**params)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        meta = exc.response.get("ResponseMetadata", {})
        headers = {k.lower(): v for k, v in meta.get("HTTPHeaders", {}).items()}
        detail = " ".join(str(error.get("Message", "")).split())  # one line
        message = explain_refusal(
            code,
            detail,
            claims=_token_claims(token),
            role_arn=role_arn,
            skew=_clock_skew(headers, time.time()),
        )
        status = int(meta.get("HTTPStatusCode") or 0)
        raise StsRefused(
            message,
            code=code,
            detail=detail,
            retryable=code in _RETRYABLE or status >= 500,
            where=where,
        ) from exc
    except BotoCoreError as exc:
        raise StsError(
            f"cannot reach STS: {type(exc).__name__}: {exc}", where=where
        ) from exc
    finally:
        client.close()

    # read the credentials
    creds = response["Credentials"]
    expiration = creds["Expiration"]
    assumed = response.get("AssumedRoleUser", {}).get("Arn")
    result = Credentials(
        access_key_id=str(creds["AccessKeyId"]),
        secret_access_key=str(creds["SecretAccessKey"]),
        session_token=str(creds["SessionToken"]),
        expiration=float(expiration.timestamp()),
        assumed_role_arn=str(assumed) if assumed else None,
    )
    register_secret(result.secret_access_key)
    register_secret(result.session_token)
    log.info(
        "STS credentials for %s (key %s) expire in %.0fs",
        assumed or role_arn,
        result.access_key_id,
        result.remaining(),
    )
    return result
