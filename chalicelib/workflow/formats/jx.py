"""A small evaluator for JX, the JSON-with-expressions language of Makeflow workflows.

Covers what JX workflows use: JSON plus `#` comments and trailing commas, symbols bound by
`define`, arithmetic (integer division truncates, as in C), comparisons, and/or/not,
lookups and slices, list comprehensions (`expr for x in list [if cond]`, several clauses,
spliced into the enclosing list), method-call chaining (`a.f(b)` is `f(a, b)`), and the
functions range, format, template, join, len, ceil, floor, basename, dirname and like.
Functions that read outside the file (listdir, fetch) and the query functions
(select/where/project/schema) are refused with the line they are on: expand such files
where their data is (cctools' jx2json) and import the JSON.
"""

from __future__ import annotations

import json
import math
import posixpath
import re
from collections import ChainMap
from collections.abc import Callable, Mapping
from typing import Any

from msgspec import Struct

from chalicelib.workflow.numbers import finite

MAX_ITEMS = 1_000_000
_PUNCT = ("==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "%", "(", ")", "[", "]",
          "{", "}", ",", ":", ".")
_KEYWORDS = {"true": True, "false": False, "null": None}
_NUMBER = re.compile(r"\d+(\.\d+)?([eE][+-]?\d+)?")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t"}
_TEMPLATE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class JXError(Exception):
    """A JX document that cannot be read or evaluated; `line` is 1-based."""

    def __init__(self, line: int, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(f"line {line}: {message}")


class _Tok(Struct, frozen=True):
    kind: str  # "str", "num", "id", "op", "end"
    value: Any
    line: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i, line = 0, 1
    while i < len(text):
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
        elif c == '"':
            value, i = _string(text, i, line)
            out.append(_Tok("str", value, line))
        elif c.isdigit():
            m = _NUMBER.match(text, i)
            assert m is not None
            out.append(_Tok("num", _number(m.group(0), bool(m.group(1) or m.group(2)), line), line))
            i = m.end()
        elif c.isalpha() or c == "_":
            m = _IDENT.match(text, i)
            assert m is not None
            out.append(_Tok("id", m.group(0), line))
            i = m.end()
        else:
            op = next((p for p in _PUNCT if text.startswith(p, i)), None)
            if op is None:
                raise JXError(line, f"unexpected character {c!r}")
            out.append(_Tok("op", op, line))
            i += len(op)
    out.append(_Tok("end", None, line))
    return out


def _string(text: str, i: int, line: int) -> tuple[str, int]:
    chars: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return "".join(chars), i + 1
        if c == "\n":
            raise JXError(line, "a string runs past the end of the line")
        if c == "\\":
            nxt = text[i + 1:i + 2]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
                chars.append(chr(int(text[i + 2:i + 6], 16)))
                i += 6
                continue
            if nxt not in _ESCAPES:
                raise JXError(line, f"unknown escape \\{nxt} in a string")
            chars.append(_ESCAPES[nxt])
            i += 2
            continue
        chars.append(c)
        i += 1
    raise JXError(line, "a string is not closed")


# -- syntax tree -----------------------------------------------------------------------------


class Node(Struct, frozen=True):
    line: int


class Lit(Node, frozen=True):
    value: Any


class Sym(Node, frozen=True):
    name: str


class Clause(Struct, frozen=True):
    var: str
    source: Node
    cond: Node | None


class Item(Struct, frozen=True):
    expr: Node
    clauses: tuple[Clause, ...] = ()


class ListE(Node, frozen=True):
    items: tuple[Item, ...]


class ObjE(Node, frozen=True):
    pairs: tuple[tuple[Node, Node], ...]


class Op(Node, frozen=True):
    op: str
    args: tuple[Node, ...]


class Call(Node, frozen=True):
    name: str
    args: tuple[Node, ...]


class Index(Node, frozen=True):
    target: Node
    key: Node | None
    stop: Node | None = None
    is_slice: bool = False


class _Parser(Struct):
    toks: list[_Tok]
    pos: int = 0

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def next(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.value in ops

    def is_word(self, word: str) -> bool:
        tok = self.peek()
        return tok.kind == "id" and tok.value == word

    def expect(self, op: str) -> _Tok:
        tok = self.next()
        if tok.kind != "op" or tok.value != op:
            raise JXError(tok.line, f"expected {op!r}, found {_show(tok)}")
        return tok

    def expr(self) -> Node:
        node = self.and_expr()
        while self.is_word("or"):
            tok = self.next()
            node = Op(tok.line, "or", (node, self.and_expr()))
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.is_word("and"):
            tok = self.next()
            node = Op(tok.line, "and", (node, self.not_expr()))
        return node

    def not_expr(self) -> Node:
        if self.is_word("not"):
            tok = self.next()
            return Op(tok.line, "not", (self.not_expr(),))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        while self.is_op("==", "!=", "<", "<=", ">", ">="):
            tok = self.next()
            node = Op(tok.line, tok.value, (node, self.additive()))
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.is_op("+", "-"):
            tok = self.next()
            node = Op(tok.line, tok.value, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.is_op("*", "/", "%"):
            tok = self.next()
            node = Op(tok.line, tok.value, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.is_op("-", "+"):
            tok = self.next()
            return Op(tok.line, "neg" if tok.value == "-" else "pos", (self.unary(),))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while True:
            if self.is_op("["):
                node = self.index(node)
            elif self.is_op(".") and self.toks[self.pos + 1].kind == "id":
                tok = self.next()
                name = self.next().value
                self.expect("(")
                node = Call(tok.line, name, (node, *self.args()))
            else:
                return node

    def index(self, target: Node) -> Node:
        tok = self.expect("[")
        start = None if self.is_op(":") else self.expr()
        if self.is_op(":"):
            self.next()
            stop = None if self.is_op("]") else self.expr()
            self.expect("]")
            return Index(tok.line, target, start, stop, True)
        self.expect("]")
        return Index(tok.line, target, start)

    def args(self) -> tuple[Node, ...]:
        out: list[Node] = []
        while not self.is_op(")"):
            out.append(self.expr())
            if not self.is_op(")"):
                self.expect(",")
        self.next()
        return tuple(out)

    def primary(self) -> Node:
        tok = self.next()
        if tok.kind in ("str", "num"):
            return Lit(tok.line, tok.value)
        if tok.kind == "id":
            if tok.value in _KEYWORDS:
                return Lit(tok.line, _KEYWORDS[tok.value])
            if self.is_op("("):
                self.next()
                return Call(tok.line, tok.value, self.args())
            return Sym(tok.line, tok.value)
        if tok.kind == "op" and tok.value == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "op" and tok.value == "[":
            return self.list_literal(tok)
        if tok.kind == "op" and tok.value == "{":
            return self.object_literal(tok)
        raise JXError(tok.line, f"expected a value, found {_show(tok)}")

    def list_literal(self, open_tok: _Tok) -> Node:
        items: list[Item] = []
        while not self.is_op("]"):
            expr = self.expr()
            clauses: list[Clause] = []
            while self.is_word("for"):
                self.next()
                var = self.next()
                if var.kind != "id":
                    raise JXError(var.line, f"expected a variable after 'for', found {_show(var)}")
                if not self.is_word("in"):
                    raise JXError(self.peek().line, f"expected 'in', found {_show(self.peek())}")
                self.next()
                source = self.expr()
                cond = None
                if self.is_word("if"):
                    self.next()
                    cond = self.expr()
                clauses.append(Clause(var.value, source, cond))
            items.append(Item(expr, tuple(clauses)))
            if not self.is_op("]"):
                self.expect(",")
        self.next()
        return ListE(open_tok.line, tuple(items))

    def object_literal(self, open_tok: _Tok) -> Node:
        pairs: list[tuple[Node, Node]] = []
        while not self.is_op("}"):
            key = self.expr()
            self.expect(":")
            pairs.append((key, self.expr()))
            if not self.is_op("}"):
                self.expect(",")
        self.next()
        return ObjE(open_tok.line, tuple(pairs))


def _show(tok: _Tok) -> str:
    return "the end of the file" if tok.kind == "end" else repr(tok.value)


def parse(text: str) -> Node:
    """Parse one JX expression (a whole document)."""
    parser = _Parser(_tokens(text))
    node = parser.expr()
    end = parser.peek()
    if end.kind != "end":
        raise JXError(end.line, f"unexpected {_show(end)} after the document")
    return node


# -- evaluation ------------------------------------------------------------------------------

Env = Mapping[str, Any]


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _number(raw: str, is_float: bool, line: int) -> int | float:
    """A number literal; one that overflows (1e400, or more digits than Python converts) is
    an error here, not an OverflowError or a ValueError later."""
    try:
        value: int | float = float(raw) if is_float else int(raw)
    except ValueError:
        raise JXError(line, f"the number {raw[:20]}... has too many digits") from None
    return _finite(value, line)


def _finite(value: Any, line: int) -> Any:
    """`value` unchanged unless it is a number that is not finite or too big for a float."""
    if _is_num(value) and finite(value) is None:
        raise JXError(line, "a number is out of range (NaN, infinite, or too big for a float)")
    return value


def _atom_text(v: Any) -> str:
    """An atom as cctools prints it when `+` joins it to a string: true, 1, 0.5."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.16g}"
    return str(v)


def _arith(op: str, a: Any, b: Any, line: int) -> Any:
    return _finite(_arith_raw(op, a, b, line), line)


def _arith_raw(op: str, a: Any, b: Any, line: int) -> Any:
    if op == "+" and isinstance(a, str) and isinstance(b, str | int | float):
        return a + _atom_text(b)  # cctools turns the other atom into a string for '+'
    if op == "+" and isinstance(b, str) and isinstance(a, int | float):
        return _atom_text(a) + b
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return a + b
    if not (_is_num(a) and _is_num(b)):
        raise JXError(line, f"mismatched types for {op!r}: {_text(a)[:40]} and {_text(b)[:40]}")
    if op in ("/", "%") and b == 0:
        raise JXError(line, "division by zero")
    if isinstance(a, int) and isinstance(b, int):
        if op == "/":
            q = abs(a) // abs(b)
            return q if (a >= 0) == (b >= 0) else -q
        if op == "%":
            q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
            return a - b * q
    ops: dict[str, Callable[[Any, Any], Any]] = {
        "+": lambda x, y: x + y, "-": lambda x, y: x - y, "*": lambda x, y: x * y,
        "/": lambda x, y: x / y, "%": math.fmod,
    }
    return ops[op](a, b)


def _compare(op: str, a: Any, b: Any, line: int) -> bool:
    if op in ("==", "!="):
        same = type(a) is type(b) or (_is_num(a) and _is_num(b))
        equal = same and a == b
        return equal if op == "==" else not equal
    if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise JXError(line, f"cannot compare {_text(a)[:40]} and {_text(b)[:40]} with {op!r}")
    return bool({"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op])


def _bool(v: Any, line: int) -> bool:
    if not isinstance(v, bool):
        raise JXError(line, f"expected true or false, got {_text(v)[:40]}")
    return v


def evaluate(node: Node, env: Env) -> Any:
    """The JSON value of `node` with symbols bound by `env`."""
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Sym):
        if node.name not in env:
            raise JXError(node.line, f"undefined symbol {node.name!r}")
        return env[node.name]
    if isinstance(node, ListE):
        out: list[Any] = []
        for item in node.items:
            _expand(item, 0, env, out)
        return out
    if isinstance(node, ObjE):
        obj: dict[str, Any] = {}
        for key_node, value_node in node.pairs:
            key = evaluate(key_node, env)
            if not isinstance(key, str):
                raise JXError(key_node.line, f"object keys must be strings, got {_text(key)}")
            obj[key] = evaluate(value_node, env)
        return obj
    if isinstance(node, Op):
        return _operator(node, env)
    if isinstance(node, Call):
        return _call(node, env)
    if isinstance(node, Index):
        return _index(node, env)
    raise JXError(node.line, "unknown expression")


def _expand(item: Item, k: int, env: Env, out: list[Any]) -> None:
    if k == len(item.clauses):
        out.append(evaluate(item.expr, env))
        if len(out) > MAX_ITEMS:
            raise JXError(item.expr.line, f"a list grew past {MAX_ITEMS} items")
        return
    clause = item.clauses[k]
    values = evaluate(clause.source, env)
    if not isinstance(values, list):
        raise JXError(clause.source.line, f"'for {clause.var} in' needs a list, "
                                          f"got {_text(values)[:40]}")
    for value in values:
        inner = ChainMap({clause.var: value}, dict(env))
        if clause.cond is None or _bool(evaluate(clause.cond, inner), clause.cond.line):
            _expand(item, k + 1, inner, out)


def _operator(node: Op, env: Env) -> Any:
    if node.op == "and":
        return _bool(evaluate(node.args[0], env), node.line) and _bool(
            evaluate(node.args[1], env), node.line)
    if node.op == "or":
        return _bool(evaluate(node.args[0], env), node.line) or _bool(
            evaluate(node.args[1], env), node.line)
    values = [evaluate(a, env) for a in node.args]
    if node.op == "not":
        return not _bool(values[0], node.line)
    if node.op in ("neg", "pos"):
        if not _is_num(values[0]) and not (node.op == "pos" and isinstance(values[0], str)):
            raise JXError(node.line, f"unary {node.op} needs a number")
        return -values[0] if node.op == "neg" else values[0]
    if node.op in ("==", "!=", "<", "<=", ">", ">="):
        return _compare(node.op, values[0], values[1], node.line)
    return _arith(node.op, values[0], values[1], node.line)


def _index(node: Index, env: Env) -> Any:
    target = evaluate(node.target, env)
    if node.is_slice:
        if not isinstance(target, list):
            raise JXError(node.line, "only lists can be sliced")
        bounds = [None if n is None else evaluate(n, env) for n in (node.key, node.stop)]
        if not all(b is None or (isinstance(b, int) and not isinstance(b, bool)) for b in bounds):
            raise JXError(node.line, "slice bounds must be integers")
        return target[bounds[0]:bounds[1]]
    assert node.key is not None
    key = evaluate(node.key, env)
    if isinstance(target, list) and isinstance(key, int) and not isinstance(key, bool):
        if -len(target) <= key < len(target):
            return target[key]
        raise JXError(node.line, f"index {key} is out of range")
    if isinstance(target, dict) and isinstance(key, str):
        if key in target:
            return target[key]
        raise JXError(node.line, f"key {key!r} not found")
    raise JXError(node.line, f"cannot look up {_text(key)[:40]} in {_text(target)[:40]}")


_REFUSED = {
    "listdir": "reads the folder the workflow runs in",
    "fetch": "reads another document at evaluation time",
    "select": "is a query function", "where": "is a query function",
    "project": "is a query function", "schema": "is a query function",
}


def _call(node: Call, env: Env) -> Any:
    if node.name in _REFUSED:
        raise JXError(node.line, f"{node.name}() {_REFUSED[node.name]}, which this importer does "
                                 "not evaluate; expand the file where its data is (cctools' "
                                 "jx2json) and import the JSON")
    args = [evaluate(a, env) for a in node.args]
    if node.name == "template":
        return _template(node, args, env)
    fn = _FUNCTIONS.get(node.name)
    if fn is None:
        raise JXError(node.line, f"unknown function {node.name}()")
    try:
        return fn(*args)
    except JXError:
        raise
    except (TypeError, ValueError, OverflowError, re.error) as exc:
        raise JXError(node.line, f"{node.name}(): {exc}") from None


def _template(node: Call, args: list[Any], env: Env) -> str:
    if not args or not isinstance(args[0], str) or len(args) > 2:
        raise JXError(node.line, "template() takes a string and an optional object")
    extra = args[1] if len(args) == 2 else {}
    if not isinstance(extra, dict):
        raise JXError(node.line, "template()'s second argument must be an object")
    scope = ChainMap(extra, dict(env))

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in scope:
            raise JXError(node.line, f"template(): undefined symbol {m.group(1)!r}")
        return _text(scope[m.group(1)])

    return _TEMPLATE.sub(fill, args[0])


def _range(*args: Any) -> list[int]:
    if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool)
                                         for a in args):
        raise ValueError("takes one to three integers")
    values = range(*args)
    if len(values) > MAX_ITEMS:
        raise ValueError(f"more than {MAX_ITEMS} items")
    return list(values)


def _format(spec: Any, *args: Any) -> str:
    if not isinstance(spec, str):
        raise ValueError("the format must be a string")
    return spec % tuple(args)


def _join(items: Any, sep: Any = " ") -> str:
    if not isinstance(items, list) or not isinstance(sep, str):
        raise ValueError("takes a list and an optional separator string")
    return sep.join(_text(i) for i in items)


def _len(value: Any) -> int:
    if not isinstance(value, list | dict | str):
        raise ValueError("needs a list")
    return len(value)


def _rounding(fn: Callable[[float], int]) -> Callable[[Any], int]:
    def apply(value: Any) -> int:
        if not _is_num(value):
            raise ValueError("needs a number")
        return fn(value)
    return apply


def _basename(path: Any, suffix: Any = None) -> str:
    if not isinstance(path, str):
        raise ValueError("needs a path string")
    base = posixpath.basename(path)
    if isinstance(suffix, str) and suffix and base.endswith(suffix) and base != suffix:
        base = base[: -len(suffix)]
    return base


def _dirname(path: Any) -> str:
    if not isinstance(path, str):
        raise ValueError("needs a path string")
    return posixpath.dirname(path)


def _like(value: Any, pattern: Any) -> bool:
    if not isinstance(value, str) or not isinstance(pattern, str):
        raise ValueError("takes two strings")
    return re.fullmatch(pattern, value) is not None


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "range": _range, "format": _format, "join": _join, "len": _len,
    "ceil": _rounding(math.ceil), "floor": _rounding(math.floor),
    "basename": _basename, "dirname": _dirname, "like": _like,
}


def evaluate_workflow(text: str, defines: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a JX workflow: `define` first (each entry sees the ones before it), then the
    rest of the document with those symbols bound. Returns plain JSON data.

    `defines` (makeflow's --jx-args and --jx-define) are bound first and win over the
    file's own `define` entries of the same name, as in makeflow."""
    node = parse(text)
    given = dict(defines or {})
    if not isinstance(node, ObjE):
        return evaluate(node, given)
    context: dict[str, Any] = dict(given)
    keyed: list[tuple[str, Node]] = []
    for key_node, value_node in node.pairs:
        key = evaluate(key_node, {})
        if not isinstance(key, str):
            raise JXError(key_node.line, "object keys must be strings")
        keyed.append((key, value_node))
    for key, value_node in keyed:
        if key == "define" and isinstance(value_node, ObjE):
            for name_node, def_node in value_node.pairs:
                name = evaluate(name_node, context)
                if not isinstance(name, str):
                    raise JXError(name_node.line, "define keys must be strings")
                if name not in given:
                    context[name] = evaluate(def_node, context)
    return {key: dict(context) if key == "define" else evaluate(value_node, context)
            for key, value_node in keyed}
