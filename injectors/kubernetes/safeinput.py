"""Bounded reading and parsing of untrusted files, YAML and JSON.

Every input the Kubernetes injector takes (a manifest, the mapping file, an
AdmissionReview) goes through here, so that hostile input is refused with a
one-line error instead of a hang, a traceback or a crashed process:

- input is read with the engine's ``read_input``: at most 64 MiB, and only
  from a regular file or stdin (``/dev/zero`` or a FIFO would never end);
- YAML is composed from parser events without recursion, refusing nesting
  deeper than :data:`MAX_DEPTH`, an alias that refers to its own anchor (a
  self-referencing, infinitely deep document) and aliases that expand a
  document by more than :data:`MAX_ALIAS_NODES` nodes (an "alias bomb");
- parsed JSON deeper than :data:`MAX_DEPTH` is refused the same way.

The limits are far above real manifests: Kubernetes objects nest about 15
levels (CRD schemas rarely 60), and anchors in hand-written manifests add
hundreds of nodes, not a million.
"""

from __future__ import annotations

from typing import Any

from agent import WebIdError

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_DEPTH",
    "compose_documents",
    "depth_exceeds",
]

# stays well below Python's recursion limit, which the YAML representer and
# the patch code (a few frames per level) must not reach
MAX_DEPTH = 200
MAX_ALIAS_NODES = 1_000_000


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON nests lists and objects deeper than ``limit``."""
    if not isinstance(value, dict | list):
        return False
    # only containers are visited: scalars, most of a review, cost one check
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        for child in item.values() if isinstance(item, dict) else item:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


class _Open:
    """A collection node being composed, with its expanded node count."""

    __slots__ = ("anchor", "node", "weight")

    def __init__(self, node: Any, anchor: str | None) -> None:
        self.node = node
        self.anchor = anchor
        self.weight = 1


def compose_documents(
    text: str, *, source: str, error: type[WebIdError]
) -> list[tuple[int, Any]]:
    """Parse multi-document YAML into ``(first line, document)`` pairs.

    Empty documents are dropped. Syntax errors and the limits above are
    raised as ``error`` with ``source:line`` and a one-line message.
    """
    import yaml
    from yaml import events, nodes

    # libyaml's parser when PyYAML was built with it; its composer recurses
    # in C (a deep document crashes the process), so compose here instead
    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_class(text)
    documents: list[tuple[int, Any]] = []
    extra = 0  # nodes added by aliases over the whole stream

    def fail(message: str, mark: Any) -> WebIdError:
        return error(message, where=f"{source}:{mark.line + 1}" if mark else source)

    try:
        anchors: dict[str, tuple[Any, int]] = {}
        pending: set[str] = set()
        stack: list[_Open] = []
        keys: list[Any] = []  # the mapping key waiting for its value, per level
        root: Any = None
        while True:
            event: Any = loader.get_event()
            if isinstance(event, events.StreamEndEvent):
                break
            if isinstance(event, events.DocumentStartEvent):
                anchors, pending, root = {}, set(), None
                continue
            if isinstance(event, events.DocumentEndEvent):
                if root is not None:
                    line = root.start_mark.line + 1
                    documents.append((line, loader.construct_document(root)))
                continue
            if isinstance(event, events.StreamStartEvent):
                continue

            # the next node: a scalar, an alias or a collection start
            node: Any = None
            start: Any = event.start_mark  # (libyaml's and PyYAML's Mark)
            end: Any = event.end_mark
            weight = 1
            if isinstance(event, events.AliasEvent):
                if event.anchor in pending:
                    raise fail(
                        f"alias *{event.anchor} refers to its own anchor"
                        " (a self-referencing document)",
                        event.start_mark,
                    )
                if event.anchor not in anchors:
                    raise fail(f"undefined alias *{event.anchor}", event.start_mark)
                node, weight = anchors[event.anchor]
                extra += weight
                if extra > MAX_ALIAS_NODES:
                    raise fail(
                        f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                        event.start_mark,
                    )
            elif isinstance(event, events.ScalarEvent):
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(nodes.ScalarNode, event.value, event.implicit)
                node = nodes.ScalarNode(tag, event.value, start, end, event.style)
                if event.anchor is not None:
                    anchors[event.anchor] = (node, 1)
            elif isinstance(event, events.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise fail(
                        f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                    )
                kind = (
                    nodes.SequenceNode
                    if isinstance(event, events.SequenceStartEvent)
                    else nodes.MappingNode
                )
                tag = event.tag
                if tag is None or tag == "!":
                    tag = loader.resolve(kind, None, event.implicit)
                node = kind(tag, [], start, None, flow_style=event.flow_style)
                if event.anchor is not None:
                    pending.add(event.anchor)
                stack.append(_Open(node, event.anchor))
                keys.append(None)
                continue
            elif isinstance(event, events.CollectionEndEvent):
                closed = stack.pop()
                keys.pop()
                closed.node.end_mark = event.end_mark
                node, weight = closed.node, closed.weight
                if closed.anchor is not None:
                    pending.discard(closed.anchor)
                    anchors[closed.anchor] = (node, weight)

            # attach it to its parent (or make it the document)
            if not stack:
                root = node
                continue
            parent = stack[-1]
            parent.weight += weight
            if isinstance(parent.node, nodes.SequenceNode):
                parent.node.value.append(node)
            elif keys[-1] is None:
                keys[-1] = node
            else:
                parent.node.value.append((keys[-1], node))
                keys[-1] = None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise fail(f"not valid YAML: {problem}", mark) from None
    except RecursionError:
        raise error(
            f"nested too deeply (over {MAX_DEPTH} levels)", where=source
        ) from None
    finally:
        loader.dispose()
    return [(line, doc) for line, doc in documents if doc is not None]
