"""README.md stays a page, and every page of the documentation can be reached from it.

The README holds the overview; the details live in docs/*.md. These tests keep that split honest: the
README under 10 KB, every relative link (and #anchor) in README.md and docs/*.md leading somewhere that
exists, and every page under docs/ reachable from the README by following links.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text without code, where brackets and parentheses are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        base = slug(heading)
        anchor, n = base, 0
        while anchor in found:
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text())) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def resolve(page: Path, target: str) -> tuple[Path, str]:
    file, _, anchor = target.partition("#")
    return ((page.parent / file).resolve() if file else page), anchor


def test_readme_fits_on_a_page():
    size = len(README.read_bytes())
    assert size < 10_000, f"README.md is {size} bytes; move details to docs/"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            file, anchor = resolve(page, target)
            where = f"{page.relative_to(ROOT)}: {target}"
            if not file.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and (file.suffix != ".md" or anchor not in anchors(file)):
                broken.append(f"{where} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    seen, todo = {README}, [README]
    while todo:
        page = todo.pop()
        for target in relative_links(page):
            file, _ = resolve(page, target)
            if file.suffix == ".md" and file.exists() and file not in seen:
                seen.add(file)
                todo.append(file)
    unreachable = [str(p.relative_to(ROOT)) for p in PAGES if p not in seen]
    assert not unreachable, f"not linked from README.md (directly or through other pages): {unreachable}"


def test_the_checks_catch_what_they_guard(tmp_path):
    """The link checker itself: a missing file and a missing heading are found, GitHub's slugs match."""
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## What to watch in RabbitMQ's `UI`\n\n## Top\n\n"
                    "[a](other.md) [b](#top-1) [c](#nowhere) `[d](in-code.md)` [e](https://example.com/x.md)\n")
    assert anchors(page) == {"top", "what-to-watch-in-rabbitmqs-ui", "top-1"}
    assert relative_links(page) == ["other.md", "#top-1", "#nowhere"]
    assert resolve(page, "other.md") == (tmp_path / "other.md", "")
