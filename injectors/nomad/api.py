"""API mode: parse, read, plan and register jobs through a Nomad server.

Uses python-nomad with the same settings the ``nomad`` CLI reads
(``NOMAD_ADDR``, ``NOMAD_TOKEN``, ``NOMAD_NAMESPACE``, ``NOMAD_REGION``,
``NOMAD_CACERT``, ``NOMAD_CLIENT_CERT``/``NOMAD_CLIENT_KEY``,
``NOMAD_SKIP_VERIFY``). HCL goes through Nomad's own parse endpoint so
variables, locals and ``dynamic`` blocks are evaluated by Nomad itself; the
result is compared with the file's static groups and tasks so a parse result
that lost blocks is reported instead of submitted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agent import InputError, RuntimeFailure, UsageError

__all__ = [
    "NomadApi",
    "NomadSettings",
    "check_address",
    "check_parse_result",
    "format_plan",
]

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "http://127.0.0.1:4646"


@dataclass(frozen=True)
class NomadSettings:
    """How to reach the Nomad HTTP API; the token never shows in ``repr``."""

    address: str | None = None
    token: str | None = None
    namespace: str | None = None
    region: str | None = None
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    skip_verify: bool = False
    timeout: int = 10

    def __repr__(self) -> str:
        token = "***" if self.token else None
        return (
            f"NomadSettings(address={self.address!r}, token={token}, "
            f"namespace={self.namespace!r}, region={self.region!r})"
        )

    @property
    def verify(self) -> bool | str:
        """What requests verifies the server with: a CA file, the system, nothing."""
        if self.skip_verify:
            return False
        return self.ca_cert or True


def check_address(address: str) -> str:
    """``address`` without a trailing slash if it is an http(s)://HOST[:PORT]
    URL, else a usage error (exit 2) naming it."""
    expected = "expected http://HOST:PORT or https://HOST:PORT"
    where = "--nomad-addr/NOMAD_ADDR"
    try:
        parts = urlsplit(address.strip())
        port = parts.port  # a port that is not a number raises here
    except ValueError:
        raise UsageError(
            f"not a Nomad address: {address!r} ({expected})", where=where
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"not a Nomad address: {address!r} ({expected})", where=where)
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise UsageError(
            f"a Nomad address has no path: {address!r} ({expected})", where=where
        )
    log.debug("Nomad address %s (port %s)", parts.hostname, port)
    return address.strip().rstrip("/")


def _unreachable(error: BaseException) -> str:
    """Why a connection failed, in a few words (no library dump)."""
    text = repr(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLError" in text:
        return "its TLS certificate is not trusted (give --nomad-ca-cert/NOMAD_CACERT)"
    if "Connection refused" in text:
        return "connection refused (is Nomad running there?)"
    if "NameResolution" in text or "Name or service not known" in text:
        return "host name not found"
    if "timed out" in text.lower():
        return "no answer (timed out)"
    return f"connection failed ({type(error).__name__})"


@contextmanager
def _calling(what: str, address: str, *, hint: str = "") -> Iterator[None]:
    """Turn python-nomad's exceptions into our errors, naming the call.

    ``hint`` ends the message when Nomad cannot be reached: what the call was
    for (the user may not expect one: HCL written as JSON), and whether the
    address was only the default.
    """
    import nomad.api.exceptions as nex
    import requests

    where = f"{address} {what}"
    try:
        yield
    except nex.TimeoutNomadException:
        raise RuntimeFailure(
            f"cannot reach Nomad: no answer in time{hint}", where=where
        ) from None
    except nex.BadRequestNomadException as exc:
        raise InputError(f"Nomad refused the job: {_body(exc)}", where=where) from None
    except nex.URLNotAuthorizedNomadException:
        raise RuntimeFailure(
            "permission denied (check NOMAD_TOKEN and its policy)", where=where
        ) from None
    except nex.URLNotFoundNomadException as exc:
        raise RuntimeFailure(f"not found: {_body(exc)}", where=where) from None
    except nex.BaseNomadException as exc:
        cause = getattr(exc, "nomad_resp", None)
        if getattr(cause, "webid_redirect", False):
            raise RuntimeFailure(str(cause), where=where) from None
        if isinstance(cause, requests.RequestException):
            raise RuntimeFailure(
                f"cannot reach Nomad: {_unreachable(cause)}{hint}", where=where
            ) from None
        raise RuntimeFailure(f"Nomad API failed: {_body(exc)}", where=where) from None
    except (ValueError, KeyError) as exc:
        raise RuntimeFailure(
            f"unexpected answer from Nomad: {exc}", where=where
        ) from None


def _body(exc: Any) -> str:
    """The start of Nomad's answer to a failed call (its error text)."""
    response = getattr(exc, "nomad_resp", None)
    text = getattr(response, "text", None)
    if text is None:
        return type(response).__name__
    return str(text).strip()[:300] or f"HTTP {getattr(response, 'status_code', '?')}"


class NomadApi:
    """The four calls the injector needs: parse, read, plan, register."""

    def __init__(self, settings: NomadSettings) -> None:
        import nomad

        self.settings = settings
        self.address = check_address(settings.address or DEFAULT_ADDRESS)
        # said when Nomad is unreachable: the user may not know a default
        # address was used
        self.hint = ""
        if not settings.address:
            self.hint = "; no NOMAD_ADDR or --nomad-addr was given: default address"
        cert: tuple[str, ...] = ()
        if settings.client_cert and settings.client_key:
            cert = (settings.client_cert, settings.client_key)
        elif settings.client_cert or settings.client_key:
            raise UsageError(
                "give both a client certificate and its key",
                where="--nomad-client-cert/--nomad-client-key",
            )
        self.client = nomad.Nomad(
            session=_session_without_redirects(),
            address=self.address,
            token=settings.token,
            namespace=settings.namespace,
            region=settings.region,
            verify=settings.verify,
            cert=cert,
            timeout=settings.timeout,
        )
        log.debug("Nomad API at %s (namespace %s)", self.address, settings.namespace)

    def parse(self, hcl: str, *, why: str = "") -> dict[str, Any]:
        """HCL -> API job JSON, by ``POST /v1/jobs/parse`` (canonicalized)."""
        log.info("asking Nomad at %s to parse the HCL job", self.address)
        why = f"; {why}" if why else ""
        with _calling("POST /v1/jobs/parse", self.address, hint=why + self.hint):
            job = self.client.jobs.parse(hcl, canonicalize=True)
        if not isinstance(job, dict):
            raise RuntimeFailure("parse answer is not a job object", where=self.address)
        return job

    def read(self, job_id: str) -> dict[str, Any]:
        """The registered job, by ``GET /v1/job/:id``."""
        with _calling(f"GET /v1/job/{job_id}", self.address, hint=self.hint):
            job = self.client.job.get_job(job_id)
        if not isinstance(job, dict):
            raise RuntimeFailure("job answer is not an object", where=self.address)
        return job

    def plan(self, job: dict[str, Any]) -> dict[str, Any]:
        """A dry run with diff, by ``POST /v1/job/:id/plan``."""
        job_id = str(job["ID"])
        with _calling(f"POST /v1/job/{job_id}/plan", self.address, hint=self.hint):
            result = self.client.job.plan_job(job_id, {"Job": job}, diff=True)
        if not isinstance(result, dict):
            raise RuntimeFailure("plan answer is not an object", where=self.address)
        return result

    def register(self, job: dict[str, Any], *, modify_index: int) -> dict[str, Any]:
        """Register by ``POST /v1/jobs``, only if the job did not change since plan."""
        body = {"Job": job, "EnforceIndex": True, "JobModifyIndex": modify_index}
        with _calling("POST /v1/jobs", self.address, hint=self.hint):
            result = self.client.jobs.register_job(body)
        if not isinstance(result, dict):
            raise RuntimeFailure("register answer is not an object", where=self.address)
        return result


def check_parse_result(
    static: dict[str, tuple[int, dict[str, int]]],
    job: dict[str, Any],
    *,
    path: str,
) -> None:
    """Every group and task written in the file must be in Nomad's parse result.

    ``static`` maps group name -> (line, {task name: line}) from the file.
    Dynamic blocks may add more; none written out may be missing.
    """
    parsed = {
        str(g.get("Name")): {str(t.get("Name")) for t in g.get("Tasks") or []}
        for g in job.get("TaskGroups") or []
    }
    for group, (line, tasks) in static.items():
        if group not in parsed:
            raise InputError(
                f"Nomad's parse result lost group {group!r}", where=f"{path}:{line}"
            )
        for task, task_line in tasks.items():
            if task not in parsed[group]:
                raise InputError(
                    f"Nomad's parse result lost task {task!r} of group {group!r}",
                    where=f"{path}:{task_line}",
                )


# -- showing a plan -------------------------------------------------------------

_MARKS = {"Added": "+", "Deleted": "-", "Edited": "~", "None": " "}


def _field_line(field: dict[str, Any], depth: int) -> str:
    mark = _MARKS.get(str(field.get("Type")), "?")
    name, old, new = field.get("Name"), field.get("Old"), field.get("New")
    pad = "  " * depth
    if field.get("Type") == "Edited":
        return f"{mark} {pad}{name}: {old!r} => {new!r}"
    value = new if field.get("Type") != "Deleted" else old
    return f"{mark} {pad}{name}: {value!r}"


def _object_lines(obj: dict[str, Any], depth: int, kind: str) -> list[str]:
    if obj.get("Type") == "None":
        return []
    mark = _MARKS.get(str(obj.get("Type")), "?")
    lines = [f"{mark} {'  ' * depth}{kind}{obj.get('Name')!r}"]
    for field in obj.get("Fields") or []:
        if field.get("Type") != "None":
            lines.append(_field_line(field, depth + 1))
    for child in obj.get("Objects") or []:
        lines.extend(_object_lines(child, depth + 1, ""))
    return lines


def format_plan(plan: dict[str, Any]) -> str:
    """A short, ``nomad job plan``-like view of a plan's diff."""
    diff = plan.get("Diff") or {}
    lines = [f"{_MARKS.get(str(diff.get('Type')), '?')} Job: {diff.get('ID')!r}"]
    for field in diff.get("Fields") or []:
        if field.get("Type") != "None":
            lines.append(_field_line(field, 1))
    for group in diff.get("TaskGroups") or []:
        updates = group.get("Updates") or {}
        counts = ", ".join(f"{n} {kind}" for kind, n in sorted(updates.items()))
        mark = _MARKS.get(str(group.get("Type")), "?")
        lines.append(
            f"{mark}   Task Group: {group.get('Name')!r}"
            + (f" ({counts})" if counts else "")
        )
        for field in group.get("Fields") or []:
            if field.get("Type") != "None":
                lines.append(_field_line(field, 2))
        for task in group.get("Tasks") or []:
            lines.extend(_object_lines(task, 2, "Task: "))
    failed = plan.get("FailedTGAllocs") or {}
    for name in sorted(failed):
        lines.append(f"! placement of group {name!r} would fail")
    return "\n".join(lines) + "\n"


def _session_without_redirects() -> Any:
    """A requests session that never follows a redirect.

    Every call carries the ACL token in ``X-Nomad-Token``, a header requests
    keeps on a redirect to another host; an answer that redirects is refused.
    """
    import requests

    class NoRedirects(requests.Session):
        def request(  # type: ignore[override]
            self, method: str, url: str, *args: Any, **kwargs: Any
        ) -> requests.Response:
            kwargs["allow_redirects"] = False
            response = super().request(method, url, *args, **kwargs)
            if response.is_redirect:
                refused = requests.exceptions.InvalidURL(
                    f"Nomad answered {response.status_code} redirecting to"
                    f" {response.headers.get('Location', '?')}; not followed, since"
                    " the request carries the ACL token: use that address"
                )
                refused.webid_redirect = True  # type: ignore[attr-defined]
                raise refused
            return response

    return NoRedirects()
