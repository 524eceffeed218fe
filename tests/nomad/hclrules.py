"""HCL's newline rules, checked independently of the injector's own parser.

python-hcl2 accepts ``task "t" { driver = "java"`` followed by more lines,
or two arguments on one line; HCL (and so Nomad) refuses them. This small
scanner knows just enough HCL - strings with interpolation, heredocs,
comments, brackets - to tell block braces from expression braces and check:

- a block whose ``{`` is followed by content closes on that same line and
  holds at most one argument (no nested block);
- otherwise ``{`` ends its line, every argument and nested block ends its
  line, and ``}`` starts its line.

``hcl_line_problems(text)`` returns one "line N: what" string per problem.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_HEREDOC = re.compile(r"<<-?([A-Za-z_][A-Za-z0-9_-]*)\r?\n")
_SPECIAL = set('{}[]()="#\n \t\r')

Token = tuple[str, int]  # kind, line


def _skip_string(text: str, at: int) -> int:
    """Offset just after the string starting at ``text[at] == '"'``."""
    j = at + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == '"':
            return j + 1
        elif text.startswith(("$${", "%%{"), j):
            j += 3
        elif text.startswith(("${", "%{"), j):
            j = _skip_template(text, j + 2)
        else:
            j += 1
    return j


def _skip_template(text: str, at: int) -> int:
    """Offset just after the ``}`` closing an interpolation opened before ``at``."""
    depth, j = 1, at
    while j < len(text) and depth:
        if text[j] == '"':
            j = _skip_string(text, j)
            continue
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        j += 1
    return j


def _tokens(text: str) -> Iterator[Token]:
    i, line, n = 0, 1, len(text)
    while i < n:
        c = text[i]
        if c == "\n":
            yield "nl", line
            line, i = line + 1, i + 1
        elif c in " \t\r":
            i += 1
        elif c == "#" or text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
        elif c == '"':
            end = _skip_string(text, i)
            yield "word", line
            line += text.count("\n", i, end)
            i = end
        elif (heredoc := _HEREDOC.match(text, i)) is not None:
            # the body runs to a line holding only the marker
            yield "word", line
            j = heredoc.end()
            line += 1
            while j < n:
                end = text.find("\n", j)
                end = n if end < 0 else end
                done = text[j:end].strip() == heredoc.group(1)
                j = end
                if done:
                    break
                line, j = line + 1, j + 1
            i = j
        elif c in "{}[]()":
            yield c, line
            i += 1
        elif c == "=":
            # "=" assigns; "==" and "=>" are operators
            two = text[i + 1 : i + 2] in ("=", ">")
            yield ("word" if two else "="), line
            i += 2 if two else 1
        else:
            j = i + 1
            while j < n and text[j] not in _SPECIAL:
                j += 1
            if text[j - 1] in "!<>" and text[j : j + 1] == "=":
                j += 1  # != <= >=
            yield "word", line
            i = j


class _Checker:
    def __init__(self, text: str) -> None:
        self.tokens = list(_tokens(text))
        self.at = 0
        self.problems: list[str] = []

    def peek(self) -> Token:
        if self.at < len(self.tokens):
            return self.tokens[self.at]
        return "eof", self.tokens[-1][1] if self.tokens else 1

    def take(self) -> Token:
        token = self.peek()
        self.at += 1
        return token

    def problem(self, line: int, what: str) -> None:
        self.problems.append(f"line {line}: {what}")

    def expression(self) -> Token:
        """Skip an expression; return what ended it (nl, }, eof) unconsumed."""
        depth = 0
        while True:
            kind, line = self.peek()
            if kind == "eof" or (depth == 0 and kind in ("nl", "}")):
                return kind, line
            self.take()
            if kind in "{[(":
                depth += 1
            elif kind in "}])":
                depth -= 1
            elif kind == "=" and depth == 0:
                self.problem(line, "two arguments on one line")

    def item(self) -> str:
        """One argument or block; returns 'attribute' or 'block'."""
        while self.peek()[0] not in ("=", "{", "nl", "}", "eof"):
            self.take()
        kind, line = self.take()
        if kind == "=":
            self.expression()
            return "attribute"
        if kind == "{":
            self.block(line)
            return "block"
        self.problem(line, "an item is neither an argument nor a block")
        return "attribute"

    def block(self, open_line: int) -> None:
        """The rest of a block after its ``{``."""
        kind, line = self.peek()
        if kind == "}":
            self.take()
            return
        if kind != "nl":
            # a one-line block: at most one argument, then "}" on this line
            if self.item() == "block":
                self.problem(open_line, "nested block inside a one-line block")
            kind, line = self.peek()
            if kind == "}":
                self.take()
                return
            self.problem(open_line, "block has content after '{' but continues")
        self.body(inner=True)

    def body(self, *, inner: bool) -> None:
        """Items each on their own lines, up to ``}`` (inner) or the end."""
        while True:
            kind, line = self.peek()
            if kind == "nl":
                self.take()
                continue
            if kind == "eof":
                return
            if kind == "}":
                self.take()
                if not inner:
                    self.problem(line, "unmatched '}'")
                    continue
                return
            self.item()
            kind, line = self.peek()
            if kind == "}":
                self.problem(line, "'}' does not start its line")
            elif kind not in ("nl", "eof"):
                self.problem(line, "two items on one line")


def hcl_line_problems(text: str) -> list[str]:
    """Every place ``text`` breaks HCL's newline rules ("line N: what")."""
    checker = _Checker(text)
    checker.body(inner=False)
    return checker.problems
