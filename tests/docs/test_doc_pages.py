"""The README stays one page that leads to the manual in docs/, and no link between the pages
points at a file or heading that is not there (sections move between pages)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.docs.test_doc_examples import DOCS, RUN_LANGS, blocks

README = ROOT / "README.md"
#: [text](target) and ![alt](target), outside fenced blocks
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6} (.+)$")


def _prose(doc: Path) -> list[str]:
    """The lines of ``doc`` outside fenced blocks (a ``#`` in a shell block is no heading)."""
    lines, fenced = [], False
    for line in doc.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def _anchors(doc: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``doc``: lower case, punctuation dropped,
    spaces as hyphens, and ``-1``, ``-2`` ... on repeats."""
    anchors: set[str] = set()
    repeats: dict[str, int] = {}
    for line in _prose(doc):
        if match := HEADING.match(line):
            slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
            n = repeats.get(slug, 0)
            anchors.add(f"{slug}-{n}" if n else slug)
            repeats[slug] = n + 1
    return anchors


def test_the_readme_is_one_page() -> None:
    """The README is the pitch, the install, the tour and links: at most 250 lines."""
    assert len(README.read_text().splitlines()) <= 250


def test_the_readme_starts_with_the_two_commands() -> None:
    """The first commands a reader sees are `make up` and `make test`."""
    first = next(b for b in blocks(README) if b.lang in RUN_LANGS)
    commands = [line.split("#")[0].strip() for line in first.text.splitlines()]
    assert commands[:2] == ["make up", "make test"]


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_every_page_of_the_manual_is_linked_from_the_readme_and_run(page: Path) -> None:
    """Each docs/ page is reachable from the README, and its blocks are in the doc test."""
    assert f"](docs/{page.name}" in README.read_text()
    assert page in DOCS


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_lead_somewhere(doc: Path) -> None:
    """A relative link names a file that exists and, with ``#``, a heading on that page."""
    broken = []
    for line in _prose(doc):
        for target in LINK.findall(line):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            if not dest.exists():
                broken.append(f"{target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{target} (no such heading)")
    assert broken == []
