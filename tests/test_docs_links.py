"""Every relative link and image in README.md and docs/*.md resolves: its file exists, and its
``#anchor`` is a heading of the file it points to (GitHub's slugs)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped (``-`` and ``_``
    kept), spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = text.replace("`", "").strip().lower()
    text = "".join(ch for ch in text if ch.isalnum() or ch in " -_")
    return text.replace(" ", "-")


def anchors(page: pathlib.Path) -> set[str]:
    """Every heading anchor of ``page``, repeated headings numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text())):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: pathlib.Path) -> list[str]:
    """The link targets of ``page`` outside code, except web and mail addresses."""
    text = CODE_SPAN.sub("", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"[a-z]+:", t)]


def test_the_slugs_are_githubs():
    assert slug("GPUs, TPUs and several hosts") == "gpus-tpus-and-several-hosts"
    assert slug("Part 2: the MLP GAN on MNIST") == "part-2-the-mlp-gan-on-mnist"
    assert (slug("The EMA's BatchNorm statistics (`benchmarks/ema_batch_stats.py`)")
            == "the-emas-batchnorm-statistics-benchmarksema_batch_statspy")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_link_resolves(page):
    broken = []
    for target in links(page):
        path, _, anchor = target.partition("#")
        goal = page if not path else (page.parent / path).resolve()
        if not goal.exists():
            broken.append(f"{target}: no {goal.relative_to(ROOT) if goal.is_relative_to(ROOT) else goal}")
        elif anchor and goal.suffix == ".md" and anchor not in anchors(goal):
            broken.append(f"{target}: no heading #{anchor} in {goal.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_pages_have_links():
    assert len(links(ROOT / "README.md")) >= 5
