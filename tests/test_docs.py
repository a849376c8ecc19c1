"""The conventions document ships with the project, and every reference to one of its sections
exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "conventions.md"
SOURCES = ("pipeline", "uvgen", "model", "eval", "tests", "benchmarks", "scripts")
REFERENCE = re.compile(r"docs/conventions\.md\s+sections?\s+(\d+)(?:\s*-\s*(\d+))?")


def _texts() -> list[tuple[Path, str]]:
    files = [ROOT / "README.md", ROOT / "params.yaml", ROOT / "dvc.yaml"]
    files += sorted((ROOT / "docs").glob("*.md"))
    for folder in SOURCES:
        files += sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else []
    return [(f, f.read_text(encoding="utf-8")) for f in files if f.is_file()]


def test_every_section_reference_exists() -> None:
    sections = {int(n) for n in re.findall(r"^## (\d+)\.", DOC.read_text(encoding="utf-8"), re.M)}
    assert sections == set(range(1, 10))
    found, bad = 0, []
    for path, text in _texts():
        for match in REFERENCE.finditer(text):
            first = int(match.group(1))
            last = int(match.group(2) or first)
            found += 1
            if not set(range(first, last + 1)) <= sections:
                bad.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert found >= 30 and not bad, bad


def test_no_reference_outside_the_project() -> None:
    stale = [
        str(p.relative_to(ROOT))
        for p, text in _texts()
        if p != Path(__file__).resolve()
        and "shared/" + "docs/conventions" in text
        or re.search(r"(?<!docs/)\bconventions (section|\d)", text)
    ]
    assert not stale, f"references to a conventions file a clone does not have: {stale}"


LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_readme_is_short_and_every_local_link_resolves() -> None:
    """The README is a newcomer's page (at most 250 lines); its links and those of every docs/
    page point at files that exist."""
    readme = ROOT / "README.md"
    assert len(readme.read_text(encoding="utf-8").splitlines()) <= 250
    broken = []
    for page in [readme, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken

