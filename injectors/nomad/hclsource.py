"""A positional view of an HCL2 file: blocks and attributes with their spans.

python-hcl2's raw Lark tree keeps the character offsets of every node
(``propagate_positions``); this module turns it into a small typed model of
blocks and attributes pointing into the ORIGINAL text, so the injector can
insert text at exact places and leave every byte it does not touch as the
user wrote it. Nothing here re-serialises HCL.
"""

from __future__ import annotations

import bisect
import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from agent import InputError

__all__ = [
    "Attribute",
    "Block",
    "HclSource",
    "ObjectValue",
    "layout_problems",
    "parse_hcl",
]

log = logging.getLogger(__name__)


@dataclass
class ObjectValue:
    """An object expression ``{ k = v ... }`` with its keys and closing brace."""

    keys: dict[str, str]  # key -> source text of its value
    start: int
    close: int  # offset of the closing ``}``


@dataclass
class Attribute:
    """``name = expression``; ``value`` is the expression's source text."""

    name: str
    value: str
    start: int
    end: int
    line: int
    obj: ObjectValue | None = None


@dataclass
class Block:
    """``type "label" ... { body }`` with the offsets of its braces."""

    type: str
    labels: list[str]
    start: int
    end: int
    line: int
    open: int  # offset of ``{``
    close: int  # offset of ``}``
    attributes: list[Attribute] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    # the enclosing block (None for the file's top level)
    parent: Block | None = field(default=None, repr=False, compare=False)

    @property
    def label(self) -> str:
        """The first label, or '' for an unlabelled block."""
        return self.labels[0] if self.labels else ""

    def attribute(self, name: str) -> Attribute | None:
        """The last attribute called ``name`` (HCL forbids duplicates anyway)."""
        found = [a for a in self.attributes if a.name == name]
        return found[-1] if found else None

    def children(self, kind: str) -> list[Block]:
        """Direct child blocks of one type."""
        return [b for b in self.blocks if b.type == kind]

    def first_item_start(self) -> int | None:
        """Offset of the first attribute or block in the body, if any."""
        starts = [a.start for a in self.attributes] + [b.start for b in self.blocks]
        return min(starts) if starts else None

    def ancestors(self) -> list[Block]:
        """This block and every enclosing block, innermost first (no top level)."""
        chain: list[Block] = []
        block: Block | None = self
        while block is not None and block.type:
            chain.append(block)
            block = block.parent
        return chain


@dataclass
class HclSource:
    """The original text and its top-level blocks."""

    text: str
    path: str
    blocks: list[Block]
    newline: str

    @cached_property
    def _newlines(self) -> list[int]:
        return [i for i, char in enumerate(self.text) if char == "\n"]

    def line_of(self, offset: int) -> int:
        """1-based line number of a character offset (a binary search, as this
        is asked for every block of files with thousands of them)."""
        return bisect.bisect_left(self._newlines, offset) + 1

    def line_start(self, offset: int) -> int:
        """Offset of the first character of the line holding ``offset``."""
        return self.text.rfind("\n", 0, offset) + 1

    def indent_at(self, offset: int) -> str:
        """Leading whitespace of the line holding ``offset``."""
        start = self.line_start(offset)
        end = start
        while end < len(self.text) and self.text[end] in " \t":
            end += 1
        return self.text[start:end]

    def only_space_before(self, offset: int) -> bool:
        """True when nothing but blanks precedes ``offset`` on its line."""
        return self.text[self.line_start(offset) : offset].strip(" \t\r") == ""

    def content_after(self, offset: int) -> int | None:
        """Offset of the first content after ``offset`` on the same line.

        Blanks and ``/* */`` comments are skipped; the end of the line, a
        ``#`` or ``//`` comment (which runs to the end of the line) give None.
        """
        text, at = self.text, offset
        while at < len(text):
            char = text[at]
            if char in " \t":
                at += 1
            elif text.startswith("/*", at):
                end = text.find("*/", at + 2)
                if end < 0 or "\n" in text[at:end]:
                    return None
                at = end + 2
            elif char in "\r\n#" or text.startswith("//", at):
                return None
            else:
                return at
        return None

    def blank_start(self, offset: int) -> int:
        """Where the run of spaces and tabs just before ``offset`` starts."""
        at = offset
        while at > 0 and self.text[at - 1] in " \t":
            at -= 1
        return at


# -- building the model from the Lark tree ------------------------------------


def _token_text(node: Any) -> str:
    from lark import Token

    if isinstance(node, Token):
        return str(node)
    return "".join(_token_text(child) for child in node.children)


def _name(node: Any) -> str:
    """An attribute name or block type: identifier, keyword or literal."""
    return _token_text(node).strip()


def _label(node: Any, text: str) -> str:
    """A block label: a plain string's content, else its source text."""
    from lark import Tree

    if isinstance(node, Tree) and node.data == "string":
        parts = node.children[1:-1]
        if all(
            isinstance(p, Tree) and p.data == "string_part" and not _has_tree(p)
            for p in parts
        ):
            return "".join(_token_text(p) for p in parts)
        return text[node.meta.start_pos : node.meta.end_pos]
    return _name(node)


def _has_tree(node: Any) -> bool:
    from lark import Tree

    return any(isinstance(child, Tree) for child in node.children)


def _object(node: Any, text: str) -> ObjectValue | None:
    """The object literal behind an ``expr_term``, if the value is one."""
    from lark import Token, Tree

    if not (isinstance(node, Tree) and node.data == "expr_term" and node.children):
        return None
    inner = node.children[0]
    if not (isinstance(inner, Tree) and inner.data == "object"):
        return None
    keys: dict[str, str] = {}
    for elem in inner.children:
        if isinstance(elem, Tree) and elem.data == "object_elem":
            key_node, value = elem.children[0], elem.children[-1]
            key = _token_text(key_node).strip().strip('"')
            keys[key] = text[value.meta.start_pos : value.meta.end_pos]
    close = inner.children[-1]
    assert isinstance(close, Token)  # noqa: S101 - grammar: object ends with RBRACE
    return ObjectValue(
        keys=keys, start=inner.meta.start_pos, close=close.start_pos or 0
    )


def _body(node: Any, text: str, block: Block) -> None:
    from lark import Tree

    for item in node.children:
        if not isinstance(item, Tree):
            continue
        if item.data == "attribute":
            name_node, value = item.children[0], item.children[-1]
            block.attributes.append(
                Attribute(
                    name=_name(name_node),
                    value=text[value.meta.start_pos : value.meta.end_pos],
                    start=item.meta.start_pos,
                    end=item.meta.end_pos,
                    line=item.meta.line,
                    obj=_object(value, text),
                )
            )
        elif item.data == "block":
            child = _block(item, text)
            child.parent = block
            block.blocks.append(child)


def _block(node: Any, text: str) -> Block:
    from lark import Token, Tree

    children = node.children
    labels: list[str] = []
    open_at = close_at = 0
    body = None
    for child in children[1:]:
        if isinstance(child, Token) and child.type == "LBRACE":
            open_at = child.start_pos or 0
        elif isinstance(child, Token) and child.type == "RBRACE":
            close_at = child.start_pos or 0
        elif isinstance(child, Tree) and child.data == "body":
            body = child
        elif isinstance(child, Tree) and child.data != "new_line_or_comment":
            if not open_at:
                labels.append(_label(child, text))
    block = Block(
        type=_name(children[0]),
        labels=labels,
        start=node.meta.start_pos,
        end=node.meta.end_pos,
        line=node.meta.line,
        open=open_at,
        close=close_at,
    )
    if body is not None:
        _body(body, text, block)
    return block


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Suspend the cyclic garbage collector while a parse tree is built.

    Lark allocates millions of small objects for a big file, none of them in
    reference cycles; each full collection walks all that are alive, which
    made parsing grow faster than the file. Reference counting still frees
    everything; the collector runs again afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_hcl(text: str, *, path: str) -> HclSource:
    """Parse HCL2 text into a positional model; syntax errors name file:line."""
    from hcl2.api import parses_to_tree
    from lark.exceptions import UnexpectedInput

    try:
        with _no_gc_pauses():
            tree = parses_to_tree(text)
    except UnexpectedInput as exc:
        line = getattr(exc, "line", 0) or 0
        column = getattr(exc, "column", 0) or 0
        found = getattr(exc, "token", None) or getattr(exc, "char", None)
        what = f"unexpected {str(found).strip()!r}" if found else "unexpected input"
        if found is not None and not str(found).strip():
            what = "unexpected end of line or file"
        raise InputError(
            f"HCL syntax error: {what}", where=f"{path}:{line}:{column}"
        ) from None
    root = Block(
        type="", labels=[], start=0, end=len(text), line=1, open=0, close=len(text)
    )
    with _no_gc_pauses():
        _body(tree.children[0], text, root)
    newline = "\r\n" if "\r\n" in text else "\n"
    log.debug("parsed %s: %d top-level blocks", path, len(root.blocks))
    return HclSource(text=text, path=path, blocks=root.blocks, newline=newline)


# -- the one-line block rule ------------------------------------------------------


def layout_problems(src: HclSource) -> list[tuple[int, str]]:
    """Where the text breaks HCL's newline rules, which python-hcl2 does not check.

    HCL (and so Nomad) accepts a block on one line only with at most one
    argument and its closing brace on that same line; otherwise ``{`` ends
    its line, every argument and nested block ends its line, and ``}``
    starts one. Returns (offset, message) pairs, in file order.
    """
    problems: list[tuple[int, str]] = []
    root = Block(
        type="", labels=[], start=0, end=len(src.text), line=1, open=-1, close=-1
    )
    root.blocks = src.blocks
    _layout_of(src, root, problems)
    return sorted(problems)


def _layout_of(src: HclSource, block: Block, problems: list[tuple[int, str]]) -> None:
    items: list[tuple[int, int]] = [(a.start, a.end) for a in block.attributes]
    items += [(b.start, b.close + 1) for b in block.blocks]
    one_line = block.type and src.line_of(block.open) == src.line_of(block.close)
    if one_line:
        if block.blocks or len(block.attributes) > 1:
            problems.append(
                (
                    block.start,
                    f"block {block.type!r} is written on one line with more than "
                    "one argument or a nested block",
                )
            )
    else:
        if block.type and src.content_after(block.open + 1) is not None:
            problems.append(
                (block.start, f"block {block.type!r} has content after its '{{'")
            )
        for _start, end in items:
            # a heredoc's span already ends with its newline
            after = None if src.text[end - 1] == "\n" else src.content_after(end)
            if after is not None and after != block.close:
                problems.append((after, "two items share one line"))
        if block.type and not src.only_space_before(block.close):
            problems.append(
                (block.close, f"block {block.type!r}: '}}' does not start its line")
            )
    for child in block.blocks:
        _layout_of(src, child, problems)
