"""The doc tests' reading of Markdown: fences, languages and the doc-test markers."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.doc_blocks import DocBlockError, parse

DOC = Path("page.md")


def test_blocks_come_with_their_language_line_and_markers() -> None:
    text = """# Page

<!-- doc-test: file: hello.json -->
```json
{"tasks": []}
```

<!-- doc-test: expect: SUCCEEDED -->
<!-- doc-test: expect-file: out/report.html -->
<!-- doc-test: replace: --degrees 1.0 => --degrees 0.2 -->
<!-- doc-test: exit: 2 -->
<!-- doc-test: slow -->
<!-- doc-test: timeout: 90 -->
```bash
updraft run hello.json --degrees 1.0
```

```
a diagram
```
"""
    json_block, bash_block, other = parse(DOC, text)
    assert (json_block.lang, json_block.line, json_block.file) == ("json", 4, "hello.json")
    assert json_block.checked and not json_block.runnable
    assert bash_block.lang == "bash" and bash_block.line == 14 and bash_block.runnable
    assert bash_block.expect == ("SUCCEEDED",) and bash_block.expect_files == ("out/report.html",)
    assert bash_block.exit_code == 2 and bash_block.slow and bash_block.timeout == 90
    assert bash_block.script() == "updraft run hello.json --degrees 0.2\n"
    assert other.lang == "" and not other.checked and not other.looks_like_commands()


def test_a_skip_keeps_its_reason_and_tabs_survive() -> None:
    text = "<!-- doc-test: skip: needs an AWS account -->\n```sh\naws s3 ls\n```\n```make\na:\n\techo a > a\n```\n"
    skipped, make = parse(DOC, text)
    assert skipped.skip == "needs an AWS account" and skipped.runnable
    assert make.text == "a:\n\techo a > a\n"


def test_an_untagged_block_of_commands_is_recognised() -> None:
    (block,) = parse(DOC, "```\n# set up\nscripts/run-montage\n```\n")
    assert block.looks_like_commands()


@pytest.mark.parametrize(("text", "message"), [
    ("<!-- doc-test: skip -->\n```bash\nx\n```\n", "needs a value"),
    ("<!-- doc-test: sikp: typo -->\n```bash\nx\n```\n", "unknown doc-test directive 'sikp'"),
    ("<!-- doc-test: exit: two -->\n```bash\nx\n```\n", "takes a number"),
    ("<!-- doc-test: replace: a -> b -->\n```bash\nx\n```\n", "OLD => NEW"),
    ("<!-- doc-test: slow -->\n\ntext\n```bash\nx\n```\n", "just above a fenced block"),
    ("```bash\nx\n", "never closed"),
    ("text\n<!-- doc-test: slow -->\n", "no block after it"),
])
def test_malformed_markers_and_fences_are_named_with_their_line(text: str, message: str) -> None:
    with pytest.raises(DocBlockError, match=message) as err:
        parse(DOC, text)
    assert str(err.value).startswith("page.md:")
