"""Makeflow's lexical rules for file lists, commands and variable values (cctools lexer.c).

Three readings of a line, as cctools' lexer makes them:
- a file list (rule head): white space separates names; quotes group and are removed;
  `\\x` is `x`; `$NAME` is replaced by the variable's value read again as a file list (so
  `V="H I" "J K"` then `$(V):` is two files), inside double quotes by its text as is;
  `a -> b` renames; `#` starts a comment.
- a command: quotes are kept; `\\x` is `x` (so `\\$X` leaves `$X` to the shell and `\\\\` is
  one backslash), inside double quotes also `\\n`, `\\t`... are the characters they name;
  `$NAME` outside single quotes is replaced (read again as command text);
  `#` outside quotes starts a comment; runs of blanks become one space.
- a variable's value: as a command, but blanks are kept and `$NAME` is replaced as is.
A variable that is not defined is passed to `undefined(name)`, whose answer is used.
"""

from __future__ import annotations

import re
from collections.abc import Callable

Lookup = Callable[[str], "str | None"]
Undefined = Callable[[str], str]

_SPECIAL = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}
_NAME = re.compile(r"\(([A-Za-z_][A-Za-z0-9_]*)\)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)")
_FILE_RUN = re.compile(r"[^\\\"'$#\s:\-]+")
_LITERAL_RUN = re.compile(r"[^\\\"'$#\s]+")
_VALUE_RUN = re.compile(r"[^\\\"'$#]+")
_DOUBLE_RUN = re.compile(r"[^\\\"'$]+")
MAX_DEPTH = 16

SPACE, COLON, ARROW = " ", ":", "->"


class LexError(Exception):
    """A line cannot be read (an open quote, substitutions nested too deeply)."""


class Token:
    """A piece of a line: `kind` is "lit", SPACE, COLON or ARROW."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str = "") -> None:
        self.kind = kind
        self.text = text


def _escaped(s: str, i: int, stop: str) -> tuple[str, int]:
    """Text from s[i] up to an unescaped character of `stop` (not included); `\\x` is x."""
    out: list[str] = []
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            if i + 1 < n:
                out.append(" " if s[i + 1] == "\n" else s[i + 1])
            i += 2
        elif c in stop:
            break
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def _single(s: str, i: int, keep: bool) -> tuple[str, int]:
    """The single-quoted text at s[i] == "'"; no substitution inside."""
    text, j = _escaped(s, i + 1, "'")
    if j >= len(s):
        raise LexError("a single quote (') is not closed")
    return (f"'{text}'" if keep else text), j + 1


def substitution(s: str, i: int) -> tuple[str, int] | None:
    """(name, end) of `$NAME`, `$(NAME)` or `${NAME}` at s[i] == "$", or None."""
    m = _NAME.match(s, i + 1)
    if not m:
        return None
    return m.group(1) or m.group(2) or m.group(3), m.end()


class Lexer:
    def __init__(self, lookup: Lookup, undefined: Undefined) -> None:
        self.lookup = lookup
        self.undefined = undefined

    def value_of(self, name: str) -> str:
        value = self.lookup(name)
        return self.undefined(name) if value is None else value

    def _dollar(self, s: str, i: int) -> tuple[str, int]:
        """At s[i] == '$': a variable's value and the index after its reference, or a lone '$'."""
        sub = substitution(s, i)
        if sub is None:
            return "$", i + 1
        return self.value_of(sub[0]), sub[1]

    def _double(self, s: str, i: int, keep: bool) -> tuple[str, int]:
        """The double-quoted text at s[i] == '"': `$NAME` is replaced, escapes interpreted."""
        out: list[str] = ['"'] if keep else []
        i += 1
        n = len(s)
        while True:
            if i >= n:
                raise LexError('a double quote (") is not closed')
            c = s[i]
            if c == '"':
                break
            if c == "\\":
                nxt = s[i + 1] if i + 1 < n else ""
                out.append(_SPECIAL.get(nxt, " " if nxt == "\n" else nxt))
                i += 2
            elif c == "$":
                text, i = self._dollar(s, i)
                out.append(text)
            elif c == "'":
                text, i = _single(s, i, keep)
                out.append(text)
            else:
                m = _DOUBLE_RUN.match(s, i)
                assert m is not None
                out.append(m.group(0))
                i = m.end()
        if keep:
            out.append('"')
        return "".join(out), i + 1

    # -- file lists ------------------------------------------------------------------------

    def file_tokens(self, s: str, depth: int = 0) -> list[Token]:
        if depth > MAX_DEPTH:
            raise LexError(f"more than {MAX_DEPTH} nested variable substitutions")
        out: list[Token] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c in " \t\n":
                while i < n and s[i] in " \t\n":
                    i += 1
                out.append(Token(SPACE))
            elif c == "#":
                break
            elif c == ":":
                out.append(Token(COLON))
                i += 1
            elif c == "$":
                sub = substitution(s, i)
                if sub is None:
                    out.append(Token("lit", "$"))
                    i += 1
                else:
                    out.extend(self.file_tokens(self.value_of(sub[0]), depth + 1))
                    i = sub[1]
            elif c == "'":
                text, i = _single(s, i, keep=False)
                out.append(Token("lit", text))
            elif c == '"':
                text, i = self._double(s, i, keep=False)
                out.append(Token("lit", text))
            elif c == "-" and s.startswith("->", i):
                out.append(Token(ARROW))
                i += 2
            elif c == "-":
                out.append(Token("lit", "-"))
                i += 1
            elif c == "\\":
                text, i = _escaped(s, i, " \t\n#:\"'$")
                out.append(Token("lit", text))
            else:
                m = _FILE_RUN.match(s, i)
                assert m is not None
                out.append(Token("lit", m.group(0)))
                i = m.end()
        return out

    def file_list(self, s: str) -> list[Token]:
        """Names (adjacent pieces joined), COLON and ARROW tokens; spaces dropped."""
        merged: list[Token] = []
        for tok in self.file_tokens(s):
            if tok.kind == "lit":
                if not tok.text:
                    continue
                if merged and merged[-1].kind == "lit":
                    merged[-1] = Token("lit", merged[-1].text + tok.text)
                    continue
            merged.append(tok)
        return [t for t in merged if t.kind != SPACE]

    # -- commands and values ---------------------------------------------------------------

    def command(self, s: str, depth: int = 0) -> list[str]:
        """The command's words and single spaces, in order (LOCAL and the like still in)."""
        if depth > MAX_DEPTH:
            raise LexError(f"more than {MAX_DEPTH} nested variable substitutions")
        out: list[str] = []
        i, n = 0, len(s)
        if depth and s[:1] in (" ", "\t"):
            out.append(SPACE)
        while i < n and s[i] in " \t":
            i += 1
        while i < n:
            c = s[i]
            if c in " \t\n":
                while i < n and s[i] in " \t\n":
                    i += 1
                out.append(SPACE)
            elif c == "#":
                break
            elif c == "$":
                sub = substitution(s, i)
                if sub is None:
                    out.append("$")
                    i += 1
                else:
                    value = self.lookup(sub[0])
                    if value is None:
                        out.append(self.undefined(sub[0]))
                    else:
                        out.extend(self.command(value, depth + 1))
                    i = sub[1]
            elif c == '"':
                text, i = self._double(s, i, keep=True)
                out.append(text)
            elif c == "'":
                text, i = _single(s, i, keep=True)
                out.append(text)
            elif c == "\\":
                text, i = _escaped(s, i, " \t\n#\"'$")
                out.append(text)
            else:
                m = _LITERAL_RUN.match(s, i)
                assert m is not None
                out.append(m.group(0))
                i = m.end()
        return out

    def value(self, s: str) -> str:
        """A variable's value: substituted and unescaped, quotes kept, comment dropped."""
        out: list[str] = []
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c == "#":
                break
            if c == "$":
                text, i = self._dollar(s, i)
                out.append(text)
            elif c == '"':
                text, i = self._double(s, i, keep=True)
                out.append(text)
            elif c == "'":
                text, i = _single(s, i, keep=True)
                out.append(text)
            elif c == "\\":
                nxt = s[i + 1] if i + 1 < n else ""
                out.append(_SPECIAL.get(nxt, " " if nxt == "\n" else nxt))
                i += 2
            else:
                m = _VALUE_RUN.match(s, i)
                assert m is not None
                out.append(m.group(0))
                i = m.end()
        return "".join(out).strip()


_STOPS: dict[str, re.Pattern[str]] = {}


def unquoted_index(text: str, chars: str) -> int:
    """Index of the first character of `chars` outside quotes and not escaped, or -1
    (cctools' look-ahead that tells a rule head from an assignment)."""
    stop = _STOPS.get(chars)
    if stop is None:
        stop = _STOPS[chars] = re.compile("[" + re.escape(chars + "\\'\"") + "]")
    i = 0
    while True:
        m = stop.search(text, i)
        if m is None:
            return -1
        c = m.group(0)
        if c in chars:
            return m.start()
        if c == "\\":
            i = m.start() + 2
            continue
        close = text.find(c, m.start() + 1)
        if close < 0:
            return -1
        i = close + 1
