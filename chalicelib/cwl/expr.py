"""CWL expressions: parameter references evaluated in Python; JavaScript (with
InlineJavascriptRequirement) in a sandboxed node `vm` context when node is installed.

`evaluate(text, ctx)` interpolates every `$(...)` and `${...}` in `text`. A string that is
exactly one expression yields the expression's value (any JSON type); otherwise the values are
spliced into the string (non-strings as JSON). `\\$(` escapes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from chalicelib.cwl.errors import CwlError, Unsupported

_SEGMENT = re.compile(r"""\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]|\["((?:[^"\\]|\\.)*)"\]""")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
JS_TIMEOUT_S = 30.0
_LITERALS = {"null": None, "true": True, "false": False}

_NODE_PROGRAM = r"""
const vm = require('vm');
let data = '';
process.stdin.on('data', c => { data += c; });
process.stdin.on('end', () => {
  const req = JSON.parse(data);
  const ctx = vm.createContext({inputs: req.inputs, self: req.self, runtime: req.runtime});
  const lib = req.lib.join('\n');
  const code = req.body ? lib + '\n(function(){' + req.expr + '\n})()' : lib + '\n(' + req.expr + '\n)';
  try {
    const value = vm.runInContext(code, ctx, {timeout: req.timeout});
    process.stdout.write(JSON.stringify(value === undefined ? null : value));
  } catch (e) {
    process.stderr.write(String(e && e.stack || e));
    process.exit(1);
  }
});
"""


class Context:
    """What expressions see: inputs, self, runtime; `js` is None when JavaScript is off,
    else the expressionLib to prepend."""

    def __init__(self, inputs: Mapping[str, Any], runtime: Mapping[str, Any] | None = None,
                 js: Sequence[str] | None = None) -> None:
        self.inputs = inputs
        self.runtime = dict(runtime or {})
        self.js = js

    def with_self(self, value: Any) -> dict[str, Any]:
        return {"inputs": self.inputs, "self": value, "runtime": self.runtime}


def node_path() -> str | None:
    return shutil.which("node") or shutil.which("nodejs")


def _scan(text: str, start: int, opening: str, closing: str) -> int:
    """The index just past the bracket closing the one at `start` (quotes respected)."""
    depth, i, quote = 0, start, ""
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise CwlError(f"unterminated expression in {text!r}")


def _parts(text: str) -> list[tuple[str, str]]:
    """("text", s) and ("paren"|"brace", body) pieces."""
    out: list[tuple[str, str]] = []
    buf, i = [], 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1:i + 3]
        if ch == "\\" and (nxt[:1] == "\\" or nxt in ("$(", "${")):  # \\ is \; \$( is a plain $(
            buf.append(nxt[0])
            i += 2
            continue
        if ch == "$" and i + 1 < len(text) and text[i + 1] in "({":
            end = _scan(text, i + 1, text[i + 1], ")" if text[i + 1] == "(" else "}")
            if buf:
                out.append(("text", "".join(buf)))
                buf = []
            out.append(("paren" if text[i + 1] == "(" else "brace", text[i + 2:end - 1]))
            i = end
            continue
        buf.append(ch)
        i += 1
    if buf:
        out.append(("text", "".join(buf)))
    return out


def single_expression(text: str) -> bool:
    """Is `text` (stripped) exactly one $(...) or ${...}?"""
    parts = _parts(text.strip()) if has_expression(text) else []
    return len(parts) == 1 and parts[0][0] != "text"


def has_expression(value: Any) -> bool:
    return isinstance(value, str) and ("$(" in value or "${" in value)


def evaluate(value: Any, ctx: Context, self_value: Any = None, strip_whitespace: bool = True) -> Any:
    """`value` with its expressions evaluated (non-strings returned as they are)."""
    if not isinstance(value, str) or not has_expression(value):
        return value
    text = value.strip() if strip_whitespace else value
    parts = _parts(text)
    scope = ctx.with_self(self_value)
    if len(parts) == 1 and parts[0][0] != "text":
        return _one(parts[0][0], parts[0][1], scope, ctx)
    if len(parts) == 1:
        return parts[0][1]
    pieces = []
    for kind, body in _parts(value):
        if kind == "text":
            pieces.append(body)
            continue
        got = _one(kind, body, scope, ctx)
        pieces.append(got if isinstance(got, str) else json.dumps(got, separators=(",", ":")))
    return "".join(pieces)


def _one(kind: str, body: str, scope: Mapping[str, Any], ctx: Context) -> Any:
    if kind == "paren":
        found, value = _param_ref(body.strip(), scope)
        if found:
            return value
    if ctx.js is None:
        raise Unsupported(f"the expression {'$(' if kind == 'paren' else '${'}{body}{')' if kind == 'paren' else '}'} "
                          "is JavaScript, which needs InlineJavascriptRequirement")
    return run_js(body, kind == "brace", scope, ctx.js)


def _param_ref(body: str, scope: Mapping[str, Any]) -> tuple[bool, Any]:
    """(True, value) when `body` is a parameter reference; (False, None) when it is not one.
    A reference that does not resolve (a missing key, `length` of a non-list) is an error."""
    if body in _LITERALS:
        return True, _LITERALS[body]
    head = _SYMBOL.match(body)
    if head is None or head.group(0) not in scope:
        return False, None
    pos, segments = head.end(), []
    while pos < len(body):
        m = _SEGMENT.match(body, pos)
        if m is None:
            return False, None
        segments.append(m)
        pos = m.end()
    value: Any = scope[head.group(0)]
    for n, m in enumerate(segments):
        key: Any = m.group(1) or (int(m.group(2)) if m.group(2) is not None else None)
        if key is None:
            raw = m.group(3) if m.group(3) is not None else m.group(4)
            key = raw.encode().decode("unicode_escape")
        if n == 0 and head.group(0) == "inputs" and isinstance(value, Mapping) and key not in value:
            raise CwlError(f"$({body}): the process has no input {key!r}")
        value = _step(value, key, body)
    return True, value


def _step(value: Any, key: Any, body: str) -> Any:
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        if key == "length":
            raise CwlError(f"$({body}): length of an object that has no 'length' field")
        return None
    if isinstance(value, list):
        if key == "length":
            return len(value)
        if isinstance(key, int):
            if key >= len(value):
                raise CwlError(f"$({body}): index {key} is past the end of a list of {len(value)}")
            return value[key]
        raise CwlError(f"$({body}): a list has no field {key!r}")
    if value is None:
        raise CwlError(f"$({body}): cannot take {key!r} of null")
    if key == "length" and isinstance(value, str):
        return len(value)
    raise CwlError(f"$({body}): cannot take {key!r} of {type(value).__name__}")


def run_js(expr: str, body: bool, scope: Mapping[str, Any], lib: Sequence[str]) -> Any:
    node = node_path()
    if node is None:
        raise Unsupported("InlineJavascriptRequirement needs node (Node.js), which is not installed here")
    request = json.dumps({**scope, "expr": expr, "body": body, "lib": list(lib), "timeout": int(JS_TIMEOUT_S * 1000)})
    try:
        done = subprocess.run([node, "-e", _NODE_PROGRAM], input=request, capture_output=True, text=True,
                              timeout=JS_TIMEOUT_S + 5, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CwlError(f"JavaScript expression took over {JS_TIMEOUT_S:g} s: {expr[:200]}") from exc
    if done.returncode != 0:
        raise CwlError(f"JavaScript expression failed: {expr[:200]}: {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout) if done.stdout else None
