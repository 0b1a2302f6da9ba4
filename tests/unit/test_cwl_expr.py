"""CWL parameter references (no JavaScript) and the node-sandboxed JavaScript."""

from __future__ import annotations

import pytest

from chalicelib.cwl.errors import CwlError, Unsupported
from chalicelib.cwl.expr import Context, evaluate, node_path

INPUTS = {"bar": {"baz": "zab1", "b az": 2, "b'az": True, "buz": ["a", "b", "c"]}, "n": None, "x": 1.5}


@pytest.mark.parametrize(("text", "want"), [
    ("$(inputs.bar.baz)", "zab1"),
    ("$(inputs['bar'].baz)", "zab1"),
    ('$(inputs["bar"]["baz"])', "zab1"),
    ("$(inputs.bar['b az'])", 2),
    ("$(inputs.bar['b\\'az'])", True),
    ("$(inputs.bar.buz[1])", "b"),
    ("$(inputs.bar.buz.length)", 3),
    ("$(null)", None),
    ("-$(inputs.bar.baz)", "-zab1"),
    ("$(inputs.bar.baz) $(inputs.bar['b az'])", "zab1 2"),
    ("$(inputs.bar.buz)", ["a", "b", "c"]),
    ("x $(inputs.bar.buz)", 'x ["a","b","c"]'),
    ("\\$(inputs.bar.baz)", "$(inputs.bar.baz)"),
    ("\\\\$(inputs.bar.baz) \\$ $$", "\\zab1 \\$ $$"),
    ("no expression", "no expression"),
])
def test_parameter_references(text: str, want: object) -> None:
    assert evaluate(text, Context(INPUTS)) == want


def test_self_and_runtime() -> None:
    ctx = Context(INPUTS, runtime={"outdir": "/out", "cores": 2})
    assert evaluate("$(self.basename)", ctx, {"basename": "a.txt"}) == "a.txt"
    assert evaluate("$(runtime.outdir)/x", ctx) == "/out/x"


@pytest.mark.parametrize("text", ["$(inputs.n.length)", "$(inputs.bar.baz.length.foo)", "$(inputs.undeclared)",
                                  "$(inputs.bar.buz[7])"])
def test_bad_references_are_errors(text: str) -> None:
    with pytest.raises(CwlError):
        evaluate(text, Context(INPUTS))


def test_javascript_without_the_requirement_is_unsupported() -> None:
    with pytest.raises(Unsupported, match="InlineJavascriptRequirement"):
        evaluate("$(inputs.x * 2)", Context(INPUTS))


@pytest.mark.skipif(node_path() is None, reason="node (Node.js) is not installed")
def test_javascript_runs_in_node_with_the_expression_lib() -> None:
    ctx = Context(INPUTS, js=["function twice(v) { return v * 2; }"])
    assert evaluate("$(twice(inputs.x))", ctx) == 3
    assert evaluate("${ return inputs.bar.buz.join('-'); }", ctx) == "a-b-c"
    with pytest.raises(CwlError, match="failed"):
        evaluate("$(require('fs'))", ctx)  # the vm context has no require
