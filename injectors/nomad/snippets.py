"""Rendering of the ``templates/nomad`` snippets, remembered within one run.

A job with many tasks asks for the same env snippet many times; the engine's
:func:`agent.render` compiles the template on each call, so identical
requests are answered from a small per-run memo.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from agent import render, render_json

__all__ = ["Snippets"]

log = logging.getLogger(__name__)

PLATFORM = "nomad"


class Snippets:
    """Renders ``templates/nomad/<name>`` (a user ``--templates`` dir first)."""

    def __init__(self, *, templates_dir: Path | None = None) -> None:
        self.templates_dir = templates_dir
        self._memo: dict[tuple[str, str], Any] = {}

    def _key(self, name: str, context: dict[str, Any]) -> tuple[str, str]:
        return name, json.dumps(context, sort_keys=True, default=str)

    def text(self, name: str, context: dict[str, Any]) -> str:
        """Rendered text of one template."""
        key = self._key(name, context)
        if key not in self._memo:
            self._memo[key] = render(
                PLATFORM, name, context, templates_dir=self.templates_dir
            )
        result: str = self._memo[key]
        return result

    def data(self, name: str, context: dict[str, Any]) -> Any:
        """One template rendered and parsed as JSON (a fresh copy each time)."""
        key = self._key(name, context)
        if key not in self._memo:
            self._memo[key] = render_json(
                PLATFORM, name, context, templates_dir=self.templates_dir
            )
        # callers splice the result into a job: never hand out a shared object
        return json.loads(json.dumps(self._memo[key]))
