"""The doc test's reading of Markdown: which blocks run, where they are, and why one is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.test_doc_examples import RUN_LANGS, blocks

DOC = """# A guide

```sh
edge-runner models
```

Some output:

```text
hello
```

<!-- doctest: skip: needs a GPU; tests/integration/test_gpus.py runs it -->
```sh
edge-runner runner my-model --gpus 0
```

```python
print("hi")
```
"""


def test_blocks_are_found_with_language_line_and_skip_reason(tmp_path: Path) -> None:
    """Each fenced block is read with its language, first line and the marker above it."""
    doc = tmp_path / "guide.md"
    doc.write_text(DOC)
    found = [(b.lang, b.line, b.text, b.skip) for b in blocks(doc)]
    assert found == [
        ("sh", 3, "edge-runner models\n", None),
        ("text", 9, "hello\n", None),
        (
            "sh",
            14,
            "edge-runner runner my-model --gpus 0\n",
            "needs a GPU; tests/integration/test_gpus.py runs it",
        ),
        ("python", 18, 'print("hi")\n', None),
    ]
    assert [b.lang in RUN_LANGS for b in blocks(doc)] == [True, False, True, True]


def test_a_marker_applies_only_to_the_block_right_below_it(tmp_path: Path) -> None:
    """A marker followed by a blank line or prose does not skip the next block."""
    doc = tmp_path / "guide.md"
    doc.write_text("<!-- doctest: skip: stale -->\n\n```sh\ntrue\n```\n")
    assert [b.skip for b in blocks(doc)] == [None]


def test_an_unclosed_fence_is_an_error(tmp_path: Path) -> None:
    """A block never closed would swallow the rest of the page: the test says where."""
    doc = tmp_path / "guide.md"
    doc.write_text("text\n\n```sh\nedge-runner models\n")
    with pytest.raises(AssertionError, match=r"guide.md:3: a fenced block is never closed"):
        blocks(doc)
