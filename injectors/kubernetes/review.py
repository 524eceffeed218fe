"""AdmissionReview in, AdmissionReview out: the webhook's logic without the server.

:meth:`Reviewer.handle` takes the raw request body and returns the HTTP
status, the response body and an :class:`Outcome` for logs and metrics. It
never raises:

- a body that is not an AdmissionReview with a request uid, or JSON nested
  deeper than :data:`~injectors.kubernetes.safeinput.MAX_DEPTH`: HTTP 400 and a
  JSON ``{"error": ...}`` (the API server then applies the failurePolicy);
- a review for something other than a Pod CREATE: allowed unchanged, with a
  warning when the webhook's rules must be wrong;
- a pod that asks for injection with bad annotations: refused (``allowed:
  false``, code 400) with a message naming the annotation, so the mistake
  shows where the pod is created instead of as missing credentials later;
- anything unexpected: refused with code 500 and logged; the server lives on.

The response carries the request's own apiVersion (``admission.k8s.io/v1`` or
``v1beta1``), kind and uid.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypedDict

from agent import ConfigError, InputError
from injectors.kubernetes.options import InjectorConfig, PodDefaults
from injectors.kubernetes.patch import plan_pod
from injectors.kubernetes.safeinput import MAX_DEPTH, depth_exceeds

__all__ = ["API_VERSIONS", "Outcome", "Reviewer"]

log = logging.getLogger(__name__)

API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")
# the API server shows warnings to kubectl users; keep them short and printable
MAX_WARNINGS = 10
MAX_WARNING_LENGTH = 240


class AdmissionResponse(TypedDict, total=False):
    """The ``response`` member of an AdmissionReview (the fields we set)."""

    uid: str
    allowed: bool
    patchType: str
    patch: str
    warnings: list[str]
    status: dict[str, Any]


@dataclass
class Outcome:
    """What happened to one request, for the log line and the metrics."""

    decision: str
    namespace: str = ""
    pod: str = ""
    uid: str = ""
    message: str = ""
    ops: int = 0
    warnings: list[str] = field(default_factory=list)


def _clean(text: str) -> str:
    printable = "".join(c if c.isprintable() else " " for c in text)
    if len(printable) > MAX_WARNING_LENGTH:
        return printable[: MAX_WARNING_LENGTH - 3] + "..."
    return printable


def _bad_request(message: str) -> tuple[int, bytes, Outcome]:
    body = json.dumps({"error": message}).encode()
    return 400, body, Outcome(decision="bad-request", message=message)


class Reviewer:
    """Answers AdmissionReviews for one configuration.

    ``defaults`` is called per request so a reloaded mapping file applies to
    the next review without locking.
    """

    def __init__(
        self,
        config: InjectorConfig,
        *,
        defaults: Callable[[], PodDefaults | None] = lambda: None,
    ) -> None:
        self.config = config
        self.defaults = defaults

    def handle(self, body: bytes) -> tuple[int, bytes, Outcome]:
        """``(http status, response body, outcome)``; never raises."""
        # parse the envelope
        try:
            review = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return _bad_request("request body is not JSON")
        except RecursionError:
            return _bad_request(f"JSON nested deeper than {MAX_DEPTH} levels")
        if depth_exceeds(review):
            return _bad_request(f"JSON nested deeper than {MAX_DEPTH} levels")
        if not isinstance(review, dict):
            return _bad_request("expected a JSON object (an AdmissionReview)")
        api_version = review.get("apiVersion")
        if api_version not in API_VERSIONS or review.get("kind") != "AdmissionReview":
            return _bad_request(
                f"expected kind AdmissionReview of {' or '.join(API_VERSIONS)}, got"
                f" apiVersion {api_version!r} kind {review.get('kind')!r}"
            )
        request = review.get("request")
        if not isinstance(request, dict):
            return _bad_request("AdmissionReview without a request")
        uid = request.get("uid")
        if not isinstance(uid, str) or not uid:
            return _bad_request("AdmissionReview request without a uid")

        # from here on every answer is an AdmissionReview for this uid
        try:
            response, outcome = self._review(request)
        except Exception:  # the server must outlive any bug
            log.exception("unexpected error reviewing request %s", uid)
            outcome = Outcome(decision="error", message="internal error")
            response = {
                "allowed": False,
                "status": {
                    "status": "Failure",
                    "code": 500,
                    "message": "webid-agent: internal error (see the webhook's log)",
                },
            }
        response["uid"] = uid
        outcome.uid = uid
        answer: dict[str, Any] = {
            "apiVersion": api_version,
            "kind": "AdmissionReview",
            "response": response,
        }
        return 200, json.dumps(answer, separators=(",", ":")).encode(), outcome

    def _review(self, request: dict[str, Any]) -> tuple[AdmissionResponse, Outcome]:
        # only pod creation is ours; anything else passes, with a hint if odd
        kind = request.get("kind")
        kind_name = kind.get("kind") if isinstance(kind, dict) else None
        group = kind.get("group") if isinstance(kind, dict) else None
        if kind_name != "Pod" or group:
            hint = (
                f"webid-agent only mutates Pods, got {kind_name!r};"
                " check the webhook's rules"
            )
            return {"allowed": True, "warnings": [hint]}, Outcome(
                decision="skipped", message=hint, warnings=[hint]
            )
        pod = request.get("object")
        if not isinstance(pod, dict):
            return self._deny("request.object is not a Pod object", Outcome("denied"))
        metadata = pod.get("metadata")
        metadata = metadata if isinstance(metadata, dict) else {}
        spec = pod.get("spec")
        spec = spec if isinstance(spec, dict) else {}
        namespace = str(request.get("namespace") or metadata.get("namespace") or "")
        outcome = Outcome(
            decision="skipped",
            namespace=namespace,
            pod=str(metadata.get("name") or metadata.get("generateName") or ""),
        )
        if request.get("operation") != "CREATE" or request.get("subResource"):
            outcome.message = "not a pod creation"
            return {"allowed": True}, outcome

        # plan the patch with this pod's defaults
        defaults = self.defaults()
        layers = (
            defaults.layers(namespace, str(spec.get("serviceAccountName") or "default"))
            if defaults
            else []
        )
        try:
            plan = plan_pod(pod, config=self.config, layers=layers)
        except InputError as exc:
            outcome.decision = "denied"
            return self._deny(exc.format(), outcome)
        except ConfigError as exc:
            # a broken template or setting is the webhook's fault, not the pod's
            log.error("cannot inject: %s", exc.format())
            outcome.decision = "error"
            return self._deny(f"webhook misconfigured: {exc.format()}", outcome, 500)

        # construct the response
        outcome.decision = plan.decision
        outcome.ops = len(plan.ops)
        response: AdmissionResponse = {"allowed": True}
        if plan.ops:
            patch = plan.patch_json().encode()
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(patch).decode("ascii")
        if plan.warnings:
            warnings = [f"webid-agent: {_clean(w)}" for w in plan.warnings]
            response["warnings"] = warnings[:MAX_WARNINGS]
            outcome.warnings = plan.warnings
        return response, outcome

    @staticmethod
    def _deny(
        message: str, outcome: Outcome, code: int = 400
    ) -> tuple[AdmissionResponse, Outcome]:
        outcome.message = message
        status = {
            "status": "Failure",
            "code": code,
            "reason": "BadRequest" if code == 400 else "InternalError",
            "message": f"webid-agent: {message}",
        }
        return {"allowed": False, "status": status}, outcome
