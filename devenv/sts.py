"""An AWS STS/IAM stand-in (moto in server mode) for development and tests.

``start_sts()`` serves moto's backends over plain HTTP on 127.0.0.1 in a
background thread; point boto3/botocore at ``Sts.endpoint_url``.

What moto does with ``AssumeRoleWithWebIdentity`` (moto 5.2): it returns
random credentials for any ``RoleArn`` (the role need not exist) and any
``WebIdentityToken`` string. It checks neither the token's signature, issuer,
audience nor expiry, nor the role's trust policy. ``GetCallerIdentity`` with
the returned credentials reports ``arn:aws:sts::123456789012:assumed-role/
<role name>/<session name>``.

Because of that, ``start_sts(token_validator=...)`` can put a check in front
of moto: each ``AssumeRoleWithWebIdentity`` token is passed to the validator
first and rejected with the STS error codes ``InvalidIdentityToken`` or
``ExpiredTokenException`` (HTTP 400) if it fails. ``idp_token_validator(idp)``
builds one that verifies the token against a ``devenv.idp`` IdP.

moto keeps its state per Python process, so all ``Sts`` servers started in
one process share roles.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import boto3
import jwt
from botocore import UNSIGNED
from botocore.config import Config
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from devenv.idp import Idp

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
DUMMY_KEY_ID = "testing"
DUMMY_SECRET = "testing"


class TokenRejected(Exception):
    """Raised by a token validator; ``code`` is the STS error code to return."""

    def __init__(self, message: str, code: str = "InvalidIdentityToken") -> None:
        super().__init__(message)
        self.code = code


TokenValidator = Callable[[str], None]


@dataclass
class Sts:
    """A running STS/IAM stand-in; stop it with ``stop()`` or use as a context."""

    endpoint_url: str
    region: str = REGION
    _server: BaseWSGIServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def client(self, service: str, **credentials: str) -> Any:
        """A boto3 client for ``service`` at this endpoint.

        Uses dummy credentials unless ``aws_access_key_id`` etc. are given;
        never reads credentials or profiles from the environment.
        """
        creds = credentials or {
            "aws_access_key_id": DUMMY_KEY_ID,
            "aws_secret_access_key": DUMMY_SECRET,
        }
        session = boto3.session.Session(region_name=self.region, **creds)
        return session.client(service, endpoint_url=self.endpoint_url)

    def unsigned_sts_client(self) -> Any:
        """An STS client that signs nothing, as for AssumeRoleWithWebIdentity."""
        session = boto3.session.Session(
            region_name=self.region,
            aws_access_key_id=DUMMY_KEY_ID,
            aws_secret_access_key=DUMMY_SECRET,
        )
        return session.client(
            "sts",
            endpoint_url=self.endpoint_url,
            config=Config(signature_version=UNSIGNED),
        )

    def stop(self) -> None:
        """Shut the server down and close its socket; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Sts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_sts(
    port: int = 0,
    *,
    token_validator: TokenValidator | None = None,
    quiet: bool = True,
) -> Sts:
    """Start moto's server on 127.0.0.1:``port`` (0 = any free port).

    With ``token_validator``, web identity tokens are checked before moto
    sees them (see the module docstring). ``quiet`` silences werkzeug's
    per-request log lines.
    """
    if quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app: WSGIApplication = DomainDispatcherApplication(create_backend_app)
    if token_validator is not None:
        app = _validating_app(app, token_validator)
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, name="devenv-sts", daemon=True
    )
    thread.start()
    bound_port = server.server_port
    return Sts(
        endpoint_url=f"http://127.0.0.1:{bound_port}", _server=server, _thread=thread
    )


def create_role(
    sts: Sts,
    name: str,
    *,
    issuer: str | None = None,
    audience: str = "sts.amazonaws.com",
) -> str:
    """Create an IAM role trusting web identities and return its ARN.

    With ``issuer`` an IAM OIDC provider for it is created (or reused) and
    the trust policy names it with an ``:aud`` condition, as on AWS; moto
    stores but does not enforce this.
    """
    iam = sts.client("iam")
    if issuer:
        provider_arn = _ensure_oidc_provider(iam, issuer, audience)
        host_path = issuer.split("://", 1)[-1]
        statement: dict[str, Any] = {
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {f"{host_path}:aud": audience}},
        }
    else:
        statement = {
            "Effect": "Allow",
            "Principal": {"Federated": "*"},
            "Action": "sts:AssumeRoleWithWebIdentity",
        }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(policy))
    return str(role["Role"]["Arn"])


def assume_role_with_web_identity(
    sts: Sts, role_arn: str, token: str, session_name: str = "webid-agent"
) -> dict[str, Any]:
    """Call AssumeRoleWithWebIdentity and return the full response."""
    response: dict[str, Any] = sts.unsigned_sts_client().assume_role_with_web_identity(
        RoleArn=role_arn, RoleSessionName=session_name, WebIdentityToken=token
    )
    return response


def idp_token_validator(idp: Idp, audience: str | None = None) -> TokenValidator:
    """A validator that accepts only valid, unexpired tokens from ``idp``."""
    from devenv.idp import verify_token

    def validate(token: str) -> None:
        try:
            verify_token(idp, token, audience)
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected(
                "Token expired: current date/time must be before the expiration "
                "date/time",
                "ExpiredTokenException",
            ) from exc
        except jwt.PyJWTError as exc:
            raise TokenRejected(f"Invalid web identity token: {exc}") from exc

    return validate


def _ensure_oidc_provider(iam: Any, issuer: str, audience: str) -> str:
    url = issuer.split("://", 1)[-1]
    for entry in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if str(entry["Arn"]).endswith(f":oidc-provider/{url}"):
            return str(entry["Arn"])
    created = iam.create_open_id_connect_provider(
        Url=issuer, ClientIDList=[audience], ThumbprintList=["0" * 40]
    )
    return str(created["OpenIDConnectProviderArn"])


def _validating_app(app: WSGIApplication, validate: TokenValidator) -> WSGIApplication:
    def wrapped(
        environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "POST":
            return app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action", [""])[0] == "AssumeRoleWithWebIdentity":
            try:
                validate(form.get("WebIdentityToken", [""])[0])
            except TokenRejected as exc:
                payload = _sts_error(exc.code, str(exc))
                start_response(
                    "400 Bad Request",
                    [
                        ("Content-Type", "text/xml"),
                        ("Content-Length", str(len(payload))),
                    ],
                )
                return [payload]
        return app(environ, start_response)

    return wrapped


def _sts_error(code: str, message: str) -> bytes:
    return (
        '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
        f"<Error><Type>Sender</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()
