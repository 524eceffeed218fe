"""``webid-agent doctor``: the checks a person would do by hand, in order.

Each check ends ``ok``, ``fail``, ``warn`` or ``skip`` and a failed one names
a *problem* from :data:`PROBLEMS`: a stable id with a one-line fix. The
troubleshooting guide (``docs/troubleshooting.md``) has one section per id, so
every message doctor prints leads to its explanation.

The checks reuse the engine: settings validation, OIDC discovery, the
configured provider, the claim checks. A token's claims are shown; the token
itself never is (it is registered with the log redaction as soon as fetched).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlparse

import click

from agent.aws.trust_policy import condition_prefix
from agent.claims import Token, check_token, parse_token
from agent.config import Settings, engine_options, settings_from_options
from agent.contract import ROLE_ARN_PATTERN
from agent.errors import (
    ConfigError,
    IdpUnavailable,
    RuntimeFailure,
    StsError,
    TokenRejected,
    WebIdError,
)
from agent.http import make_session
from agent.logsetup import redact, register_secret
from agent.providers import make_provider
from agent.providers.entra import MICROSOFT_LOGIN_HOSTS
from agent.providers.oidc import discover

__all__ = ["PROBLEMS", "Check", "Doctor", "doctor", "explain_sts_error", "sts_problem"]

log = logging.getLogger(__name__)

Status = Literal["ok", "fail", "warn", "skip"]

# problem id -> the fix shown under a failed check (one section each in
# docs/troubleshooting.md; a test keeps the two in step)
PROBLEMS: dict[str, str] = {
    "config": "set the option named above: a flag, its WEBID_* variable, or the"
    " key in --config",
    "role-arn": "give the role as arn:aws:iam::ACCOUNT:role/NAME",
    "idp-unreachable": "check the authority URL, DNS, proxies (HTTPS_PROXY) and"
    " firewalls between this host and the IdP",
    "tls-untrusted": "point --ca-bundle at the CA that signed the IdP's certificate",
    "discovery-issuer": "set --authority to the issuer exactly as the discovery"
    " document states it (scheme, host, path, trailing slash)",
    "discovery-failed": "open AUTHORITY/.well-known/openid-configuration in a"
    " browser: it must be JSON with issuer and token_endpoint",
    "idp-client": "check --client-id and the secret or certificate; an expired"
    " client secret is the usual cause",
    "idp-scope": "ask for a scope the client is granted: for Entra"
    " api://APP/.default, for other IdPs the API's scope or --audience",
    "idp-refused": "read the IdP's error above; the IdP's sign-in logs have details",
    "token-invalid": "the IdP must issue JWT access tokens with an exp claim"
    " (opaque tokens cannot be used with STS)",
    "token-issuer": "make --issuer (and the IAM OIDC provider) match the token's"
    " iss; for Entra v1 tokens set accessTokenAcceptedVersion to 2 or trust"
    " the v1 issuer",
    "token-audience": "request the audience the role expects (--audience or"
    " --scope) or change the expected audience",
    "token-lifetime": "raise the token lifetime at the IdP or lower --min-remaining",
    "clock-skew": "synchronise this host's clock (NTP); STS rejects tokens"
    " issued in its future",
    "token-file": "check that the sidecar is running and can write the token file",
    "trust-policy-file": "give the role's trust policy as JSON (aws iam get-role"
    " output, the policy document, or webid-agent aws trust-policy output)",
    "trust-provider": "the role must trust the OIDC provider named after the"
    " token's issuer: regenerate it with webid-agent aws trust-policy",
    "trust-audience": "add the token's aud to the policy's :aud condition",
    "trust-subject": "add the token's sub to the policy's :sub condition (for"
    " Entra: the service principal's object id)",
    "trust-no-subject": "add a :sub condition so other clients of the IdP cannot"
    " assume this role",
    "trust-account": "the OIDC provider in the trust policy must be in the role's"
    " own account",
    "provider-file": "give the provider as JSON (aws iam"
    " get-open-id-connect-provider output)",
    "provider-url": "create the IAM OIDC provider with the token's issuer as its"
    " URL, exactly",
    "provider-client-id": "add the token's aud to the OIDC provider's client id"
    " list (aws iam add-client-id-to-open-id-connect-provider)",
    "sts-invalid-token": "STS could not verify the token: the IdP's keys (jwks_uri)"
    " must be reachable from the internet and the issuer must match",
    "sts-no-provider": "create the IAM OIDC provider for the token's issuer in the"
    " role's account (webid-agent aws trust-policy prints its settings)",
    "sts-audience": "add the token's aud to the OIDC provider's client id list",
    "sts-expired": "the token expired before STS saw it: check the clock and"
    " that the sidecar refreshes",
    "sts-access-denied": "the role's trust policy does not allow this token: check"
    " the Federated principal and the :aud and :sub conditions (doctor"
    " --trust-policy), and that the role exists",
    "sts-unreachable": "check --sts-endpoint-url, --region and the network to STS",
    "sts-refused": "read the STS error above",
}

# beyond this, STS (and most relying parties) reject a token as issued in the
# future or as expired; IAM allows five minutes of skew.
MAX_SKEW = 300.0


@dataclass
class Check:
    """One line of doctor's report; ``data`` holds only values safe to show."""

    id: str
    status: Status
    summary: str
    problem: str | None = None
    hint: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


class _Failed(Exception):
    def __init__(self, problem: str, message: str, status: Status = "fail") -> None:
        super().__init__(message)
        self.problem = problem
        self.status = status


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _classify_idp(exc: WebIdError) -> str:
    message = exc.message
    if "TLS verification failed" in message:
        return "tls-untrusted"
    if isinstance(exc, IdpUnavailable):
        return "idp-unreachable"
    if "differs from the authority" in message:
        return "discovery-issuer"
    if "invalid_client" in message or "unauthorized_client" in message:
        return "idp-client"
    if "HTTP 401" in message or "AADSTS7000215" in message:
        return "idp-client"
    if "invalid_scope" in message or "invalid_target" in message:
        return "idp-scope"
    if isinstance(exc, TokenRejected):
        return "token-invalid"
    return "idp-refused"


# -- STS -----------------------------------------------------------------------

# STS error code and a fragment of STS's message -> PROBLEMS id; the first
# match wins. The words come from agent.aws.sts.explain_refusal, shared with
# credential-process and the credentials endpoint.
_STS_PROBLEMS: list[tuple[str, str, str]] = [
    ("InvalidIdentityToken", "audience", "sts-audience"),
    ("InvalidIdentityToken", "openidconnect provider", "sts-no-provider"),
    ("InvalidIdentityToken", "no oidc provider", "sts-no-provider"),
    ("InvalidIdentityToken", "before issued", "clock-skew"),
    ("InvalidIdentityToken", "", "sts-invalid-token"),
    ("ExpiredTokenException", "", "sts-expired"),
    ("AccessDenied", "", "sts-access-denied"),
    ("AccessDeniedException", "", "sts-access-denied"),
    ("IDPRejectedClaim", "", "sts-invalid-token"),
    ("IDPCommunicationError", "", "sts-invalid-token"),
]


def sts_problem(code: str, message: str) -> str:
    """The PROBLEMS id of one STS refusal (``sts-refused`` when not known)."""
    lower = message.lower()
    for known, fragment, problem in _STS_PROBLEMS:
        if code == known and fragment in lower:
            return problem
    return "sts-refused"


def explain_sts_error(
    code: str,
    message: str,
    *,
    claims: dict[str, Any] | None = None,
    role_arn: str = "the role",
) -> tuple[str, str]:
    """The problem id and the plain-words explanation of one STS error."""
    from agent.aws.sts import explain_refusal

    words = explain_refusal(code, message, claims=claims or {}, role_arn=role_arn)
    return sts_problem(code, message), words


# -- IAM documents -------------------------------------------------------------


def _read_json(path: Path, problem: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _Failed(problem, f"{path}: cannot read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise _Failed(problem, f"{path}:{exc.lineno}: not JSON ({exc.msg})") from exc


def policy_document(data: Any, *, source: str) -> dict[str, Any]:
    """The trust policy inside any of the shapes people have at hand."""
    if isinstance(data, dict) and isinstance(data.get("Role"), dict):
        data = data["Role"].get("AssumeRolePolicyDocument")
    elif isinstance(data, dict) and "TrustPolicy" in data:
        data = data["TrustPolicy"]
    if isinstance(data, str):
        try:
            data = json.loads(unquote(data))
        except json.JSONDecodeError as exc:
            raise _Failed("trust-policy-file", f"{source}: not a policy") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Statement"), list | dict):
        raise _Failed(
            "trust-policy-file", f"{source}: no Statement found (not a trust policy)"
        )
    return data


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _values_match(operator: str, wanted: list[Any], actual: list[str]) -> bool:
    like = "StringLike" in operator
    for value in actual:
        for pattern in wanted:
            if like and fnmatchcase(value, str(pattern)):
                return True
            if not like and value == str(pattern):
                return True
    return False


def _condition_result(
    conditions: dict[str, Any], key: str, actual: list[str]
) -> bool | None:
    """True/False when ``key`` is conditioned (and matches); None when unconditioned."""
    seen = False
    for operator, block in conditions.items():
        if not isinstance(block, dict) or key not in block:
            continue
        seen = True
        base = operator.split(":")[-1].removesuffix("IfExists")
        if base not in ("StringEquals", "StringLike"):
            raise _Failed(
                "trust-policy-file",
                f"condition {operator} on {key} is not evaluated by doctor",
                status="warn",
            )
        if not _values_match(base, _as_list(block[key]), actual):
            return False
    return True if seen else None


def evaluate_trust(
    policy: dict[str, Any], token: Token, *, role_arn: str | None
) -> tuple[Status, str, str | None]:
    """Would this policy let ``token`` assume the role? (status, detail, problem)."""
    prefix = condition_prefix(token.issuer)
    statements = [
        s
        for s in _as_list(policy.get("Statement"))
        if isinstance(s, dict)
        and s.get("Effect") == "Allow"
        and any(
            a in ("sts:AssumeRoleWithWebIdentity", "sts:*", "*")
            for a in _as_list(s.get("Action"))
        )
    ]
    federated = [
        str(arn)
        for s in statements
        for arn in _as_list((s.get("Principal") or {}).get("Federated"))
    ]
    matching = [
        s
        for s in statements
        if any(
            str(arn).endswith(f":oidc-provider/{prefix}")
            for arn in _as_list((s.get("Principal") or {}).get("Federated"))
        )
    ]
    if not matching:
        trusted = ", ".join(a.split("oidc-provider/")[-1] for a in federated) or "none"
        return (
            "fail",
            f"no statement trusts the token's issuer {prefix!r} (trusted: {trusted})",
            "trust-provider",
        )

    # the provider must live in the role's own account
    if role_arn:
        account = role_arn.split(":")[4]
        arns = [
            str(a)
            for s in matching
            for a in _as_list(s["Principal"]["Federated"])
            if str(a).endswith(f":oidc-provider/{prefix}")
        ]
        if all(a.split(":")[4] != account for a in arns):
            return (
                "fail",
                f"the trusted provider is not in the role's account {account}",
                "trust-account",
            )

    # conditions on aud and sub
    failures: list[tuple[str, str]] = []
    for statement in matching:
        conditions = statement.get("Condition") or {}
        aud = _condition_result(conditions, f"{prefix}:aud", list(token.audience))
        sub = _condition_result(
            conditions, f"{prefix}:sub", [token.subject] if token.subject else []
        )
        if aud is False:
            failures.append(
                (
                    "trust-audience",
                    f"the :aud condition does not allow {list(token.audience)}",
                )
            )
            continue
        if sub is False:
            failures.append(
                (
                    "trust-subject",
                    f"the :sub condition does not allow {token.subject!r}",
                )
            )
            continue
        if sub is None:
            return (
                "warn",
                "allowed, but the policy has no :sub condition: any client of the"
                " IdP holding the audience may assume this role",
                "trust-no-subject",
            )
        return "ok", f"statement {statement.get('Sid', '?')!r} allows this token", None
    problem, detail = failures[0]
    return "fail", detail, problem


def provider_entries(data: Any) -> list[dict[str, Any]]:
    """IAM OIDC provider settings from get-open-id-connect-provider or our output."""
    if isinstance(data, dict) and "OpenIDConnectProviders" in data:
        data = data["OpenIDConnectProviders"]
    entries = data if isinstance(data, list) else [data]
    return [e for e in entries if isinstance(e, dict) and "Url" in e]


def evaluate_provider(
    entries: list[dict[str, Any]], token: Token
) -> tuple[Status, str, str | None]:
    """Is there a provider for the token's issuer that accepts its audience?"""
    prefix = condition_prefix(token.issuer)
    found = [e for e in entries if condition_prefix(str(e["Url"])) == prefix]
    if not found:
        urls = ", ".join(str(e["Url"]) for e in entries) or "none"
        return (
            "fail",
            f"no provider URL equals the token's issuer {prefix!r} (found: {urls})",
            "provider-url",
        )
    client_ids = {str(c) for e in found for c in _as_list(e.get("ClientIDList"))}
    if not client_ids & set(token.audience):
        return (
            "fail",
            f"client id list {sorted(client_ids)} has none of the token's aud"
            f" {list(token.audience)}",
            "provider-client-id",
        )
    return "ok", f"provider {prefix!r} accepts aud {list(token.audience)}", None


# -- the checks ----------------------------------------------------------------


@dataclass
class Doctor:
    """Runs the checks in order; later ones are skipped when what they need failed."""

    options: dict[str, Any]
    role_arn: str | None = None
    trust_policy: Path | None = None
    oidc_provider: Path | None = None
    sts: bool = False
    sts_endpoint: str | None = None
    region: str | None = None
    session_name: str = "webid-agent-doctor"
    progress: Callable[[str], None] = lambda message: None
    clock: Callable[[], float] = time.time
    checks: list[Check] = field(default_factory=list)
    expected_issuer: str | None = None

    def _add(
        self,
        check_id: str,
        status: Status,
        summary: str,
        *,
        problem: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Check:
        check = Check(
            id=check_id,
            status=status,
            summary=redact(summary),
            problem=problem,
            hint=PROBLEMS.get(problem) if problem else None,
            data=data or {},
        )
        self.checks.append(check)
        return check

    @contextmanager
    def _step(
        self, check_id: str, title: str, *, problem: str | None = None
    ) -> Iterator[None]:
        """Record a _Failed or WebIdError raised inside as this check's failure.

        ``problem`` names the problem of any WebIdError; by default it is
        told from the error itself.
        """
        self.progress(title)
        try:
            yield
        except _Failed as exc:
            self._add(check_id, exc.status, str(exc), problem=exc.problem)
        except WebIdError as exc:
            self._add(
                check_id, "fail", exc.format(), problem=problem or _classify_idp(exc)
            )

    def _skip(self, check_id: str, why: str) -> None:
        self._add(check_id, "skip", why)

    def failed(self, check_id: str) -> bool:
        return any(c.id == check_id and c.status == "fail" for c in self.checks)

    def run(self) -> list[Check]:
        settings = self.check_config()
        token = None
        if settings is not None:
            self.check_token_file(settings)
            if self.check_discovery(settings):
                token = self.check_token(settings)
        if token is not None:
            assert settings is not None  # noqa: S101
            self.check_claims(settings, token)
        for check_id in ("trust-policy", "oidc-provider", "sts"):
            if token is None:
                self._skip(check_id, "skipped: no token to check")
        if token is not None:
            self.check_trust_policy(token)
            self.check_oidc_provider(token)
            self.check_sts(token)
        return self.checks

    def check_config(self) -> Settings | None:
        settings = None
        with self._step("config", "reading the configuration", problem="config"):
            if self.role_arn is not None and not re.match(
                ROLE_ARN_PATTERN, self.role_arn
            ):
                raise _Failed(
                    "role-arn", f"--role-arn: not a role ARN: {self.role_arn!r}"
                )
            settings = settings_from_options(self.options, default_token_file=None)
            if not settings.uses_certificate:
                settings.client_secret()  # readable and not empty
            self._add(
                "config",
                "ok",
                f"provider {settings.provider}, authority {settings.authority_url},"
                f" client id {settings.client_id}",
                data={
                    "provider": settings.provider,
                    "authority": settings.authority_url,
                    "client_id": settings.client_id,
                    "audience": settings.audience,
                    "scopes": settings.scopes,
                },
            )
        if settings is None and not self.failed("config"):
            self._add("config", "fail", "configuration incomplete", problem="config")
        if settings is None:
            for check_id in ("discovery", "token", "claims"):
                self._skip(check_id, "skipped: the configuration is incomplete")
        return settings

    def check_token_file(self, settings: Settings) -> None:
        path = settings.token_file
        if path is None:
            return
        with self._step("token-file", f"reading {path}"):
            try:
                raw = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise _Failed(
                    "token-file", f"{path}: cannot read ({exc.strerror})"
                ) from exc
            register_secret(raw)
            token = parse_token(raw, source=str(path))
            remaining = token.remaining(self.clock())
            if remaining <= 0:
                raise _Failed(
                    "token-file", f"{path}: the token expired {-remaining:.0f}s ago"
                )
            self._add(
                "token-file",
                "ok",
                f"{path} holds a token valid for {remaining:.0f}s more",
                data={"path": str(path), "remaining_seconds": int(remaining)},
            )

    def _discovery_url(self, settings: Settings) -> str:
        url = settings.authority_url
        if settings.provider == "entra" and urlparse(url).hostname in (
            MICROSOFT_LOGIN_HOSTS
        ):
            return f"{url}/v2.0"
        return url

    def check_discovery(self, settings: Settings) -> bool:
        url = self._discovery_url(settings)
        with self._step("discovery", f"reading {url}/.well-known/openid-configuration"):
            session = make_session(
                ca_bundle=settings.ca_bundle, timeout=settings.timeout
            )
            try:
                doc = discover(session, url)
            finally:
                session.close()
            # the engine forgives a trailing slash; IAM compares iss exactly
            exact = doc["issuer"] == url
            self._add(
                "discovery",
                "ok" if exact else "warn",
                f"issuer {doc['issuer']}, token endpoint {doc['token_endpoint']}"
                + ("" if exact else f" (the authority is {url}: the slash differs)"),
                problem=None if exact else "discovery-issuer",
                data={
                    "issuer": doc["issuer"],
                    "token_endpoint": doc["token_endpoint"],
                    "jwks_uri": doc.get("jwks_uri"),
                },
            )
            return True
        self._skip("token", "skipped: the IdP's discovery document failed")
        self._skip("claims", "skipped: no token")
        return False

    def check_token(self, settings: Settings) -> Token | None:
        with self._step("token", f"fetching a token from {settings.authority_url}"):
            provider = make_provider(settings)
            try:
                started = self.clock()
                raw = provider.fetch()
                register_secret(raw)
                received = self.clock()
                token = parse_token(
                    raw, source=settings.authority_url, received_at=received
                )
            finally:
                provider.close()
            self.expected_issuer = provider.expected_issuer()
            self._add(
                "token",
                "ok",
                f"fetched in {received - started:.2f}s: iss={token.issuer}"
                f" aud={','.join(token.audience)} sub={token.subject}"
                f" exp={_iso(token.expires_at)} lifetime={token.lifetime:.0f}s",
                data={
                    **token.summary(),
                    "expires": _iso(token.expires_at),
                    "remaining_seconds": int(token.remaining(received)),
                },
            )
            return token
        self._skip("claims", "skipped: no token")
        return None

    def check_claims(self, settings: Settings, token: Token) -> None:
        now = self.clock()
        source = "token"

        # issuer: the one the provider expects (the discovered one, or --issuer)
        expected = self.expected_issuer
        with self._step("issuer", "checking iss", problem="token-issuer"):
            check_token(
                token, source=source, issuer=expected, audience=None, min_remaining=0
            )
            self._add("issuer", "ok", f"iss {token.issuer} is the expected issuer")

        # audience: the configured one, if any
        if settings.audience is None:
            self._add(
                "audience",
                "warn",
                f"no --audience configured; the token's aud is {list(token.audience)}"
                " and STS will check it against the OIDC provider's client ids",
                problem="token-audience",
            )
        else:
            with self._step("audience", "checking aud", problem="token-audience"):
                check_token(
                    token,
                    source=source,
                    issuer=None,
                    audience=settings.audience,
                    min_remaining=0,
                )
                self._add("audience", "ok", f"aud includes {settings.audience!r}")

        # lifetime: long enough for the refresh schedule
        with self._step("lifetime", "checking the lifetime", problem="token-lifetime"):
            check_token(
                token,
                source=source,
                issuer=None,
                audience=None,
                min_remaining=settings.min_remaining,
                now=now,
            )
            self._add(
                "lifetime",
                "ok",
                f"lifetime {token.lifetime:.0f}s, {token.remaining(now):.0f}s left"
                f" (refresh at {settings.refresh_at:.0%})",
            )

        # clock: the token's iat against this host's clock
        skew = token.issued_at - now
        if abs(skew) > MAX_SKEW:
            self._add(
                "clock",
                "fail",
                f"the token was issued {abs(skew):.0f}s in this host's"
                f" {'future' if skew > 0 else 'past'} (iat {_iso(token.issued_at)},"
                f" now {_iso(now)})",
                problem="clock-skew",
            )
        else:
            self._add(
                "clock", "ok", f"clock agrees with the IdP within {abs(skew):.0f}s"
            )

    def check_trust_policy(self, token: Token) -> None:
        if self.trust_policy is None:
            self._skip("trust-policy", "skipped: give --trust-policy FILE to compare")
            return
        path = self.trust_policy
        with self._step("trust-policy", f"comparing with {path}"):
            policy = policy_document(
                _read_json(path, "trust-policy-file"), source=str(path)
            )
            status, detail, problem = evaluate_trust(
                policy, token, role_arn=self.role_arn
            )
            self._add("trust-policy", status, detail, problem=problem)

    def check_oidc_provider(self, token: Token) -> None:
        source = self.oidc_provider
        if source is None and self.trust_policy is not None:
            # webid-agent aws trust-policy output carries the provider settings too
            try:
                data = json.loads(self.trust_policy.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                data = None
            if isinstance(data, dict) and "OpenIDConnectProviders" in data:
                source = self.trust_policy
        if source is None:
            self._skip("oidc-provider", "skipped: give --oidc-provider FILE to compare")
            return
        with self._step("oidc-provider", f"comparing with {source}"):
            entries = provider_entries(_read_json(source, "provider-file"))
            if not entries:
                raise _Failed("provider-file", f"{source}: no Url found")
            status, detail, problem = evaluate_provider(entries, token)
            self._add("oidc-provider", status, detail, problem=problem)

    def check_sts(self, token: Token) -> None:
        if not self.sts:
            self._skip("sts", "skipped: give --sts --role-arn ARN to call STS")
            return
        if not self.role_arn:
            self._add("sts", "fail", "--sts needs --role-arn", problem="role-arn")
            return
        region = (
            self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self.progress(f"calling STS AssumeRoleWithWebIdentity for {self.role_arn}")
        from agent.aws.sts import (
            StsRefused,
            assume_role_with_web_identity,
            format_expiration,
        )

        try:
            creds = assume_role_with_web_identity(
                token.value,
                self.role_arn,
                session_name=self.session_name,
                region=region,
                endpoint_url=self.sts_endpoint,
                timeout=10.0,
            )
        except StsRefused as exc:
            problem = sts_problem(exc.code, exc.detail)
            self._add("sts", "fail", exc.format(), problem=problem)
            return
        except StsError as exc:
            self._add("sts", "fail", exc.format(), problem="sts-unreachable")
            return
        arn = creds.assumed_role_arn or ""
        expiration = format_expiration(creds.expiration)
        self._add(
            "sts",
            "ok",
            f"assumed {arn} (credentials valid until {expiration})",
            data={"assumed_role_arn": arn, "expiration": expiration},
        )


# -- output --------------------------------------------------------------------

_MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}


def format_text(checks: list[Check]) -> str:
    """One line per check, with the fix under each failure and warning."""
    width = max(len(c.id) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{_MARKS[check.status]} {check.id:<{width}}  {check.summary}")
        if check.hint and check.status in ("fail", "warn"):
            lines.append(f"  {'':<{width}}  fix: {check.hint} [{check.problem}]")
    failed = sum(c.status == "fail" for c in checks)
    lines.append(f"{failed} check(s) failed" if failed else "all checks passed")
    return "\n".join(lines)


@click.command()
@engine_options
@click.option(
    "--role-arn",
    envvar="WEBID_ROLE_ARN",
    show_envvar=True,
    help="The role the token is for (checked, and assumed with --sts).",
)
@click.option(
    "--trust-policy",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The role's trust policy JSON (aws iam get-role output works too).",
)
@click.option(
    "--oidc-provider",
    type=click.Path(dir_okay=False, path_type=Path),
    help="aws iam get-open-id-connect-provider output to compare with.",
)
@click.option("--sts", is_flag=True, help="Really call AssumeRoleWithWebIdentity.")
@click.option(
    "--sts-endpoint-url",
    "--sts-endpoint",
    "sts_endpoint",
    envvar="AWS_ENDPOINT_URL_STS",
    show_envvar=True,
    help="STS endpoint URL (default: the regional endpoint).",
)
@click.option("--region", help="AWS region for STS [AWS_REGION or us-east-1].")
@click.option(
    "--session-name",
    default="webid-agent-doctor",
    show_default=True,
    help="Role session name for --sts.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(
    *,
    role_arn: str | None,
    trust_policy: Path | None,
    oidc_provider: Path | None,
    sts: bool,
    sts_endpoint: str | None,
    region: str | None,
    session_name: str,
    as_json: bool,
    **options: Any,
) -> None:
    """Check the configuration, the IdP, a token's claims, IAM and STS.

    Each check prints ✓ or ✗ and, when it fails, the fix. The token's iss,
    aud, sub and exp are shown, never the token. Exit code 1 when a check
    fails, 2 when the configuration itself is incomplete.

    \b
    Examples:
      webid-agent --config idp.yaml doctor
      webid-agent --config idp.yaml doctor --trust-policy trust.json
      webid-agent --config idp.yaml doctor --sts \\
          --role-arn arn:aws:iam::111122223333:role/app
      webid-agent --config idp.yaml doctor --json | jq '.[] | select(.status=="fail")'
    """
    interactive = not as_json and sys.stderr.isatty()

    def progress(message: str) -> None:
        if interactive:
            click.echo(f"… {message}", err=True)

    checks = Doctor(
        options=options,
        role_arn=role_arn,
        trust_policy=trust_policy,
        oidc_provider=oidc_provider,
        sts=sts,
        sts_endpoint=sts_endpoint,
        region=region,
        session_name=session_name,
        progress=progress,
    ).run()
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        click.echo(format_text(checks))

    # the exit code: 2 when the configuration is incomplete, 1 for any failure
    failed = [c.id for c in checks if c.status == "fail"]
    if "config" in failed:
        raise ConfigError("the configuration is incomplete", where="doctor")
    if failed:
        raise RuntimeFailure(f"failed: {', '.join(failed)}", where="doctor")
