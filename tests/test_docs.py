"""The project's method document, docs/method.md, and the references to it.

README, the dashboard's help texts, the docstrings and the tests cite the method
document by section, as in "docs/method.md, *Node weights*". These tests check,
over every ``*.py`` and ``*.md`` file that git lists (tracked, or new and not
ignored), that no file points to the private notes the project was built from
(they do not ship) and that every cited section is a heading of docs/method.md.
A name with a ``{placeholder}`` is a template (filled in by code) and is not
checked; this file's own examples are left out of the scan.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
METHOD_DOC = ROOT / "docs" / "method.md"
PRIVATE_NOTES = "METHOD" + ".md"
"""The private notes' file name, built from two parts so that this file does not cite it."""

AGREED_SECTIONS = (
    "Data and hierarchy", "MCM and MCLoss", "Ensembles", "Node weights", "Focal weighting", "Uncertainty modes",
    "LPROS, schedules and the mixed loss", "ZLPR", "Metrics", "Evaluated nodes", "Rare nodes", "Defaults and why",
    "References", "Tail-aware baselines", "Decision rules", "Image encoders",
)
"""The sections other documents and the code cite (README, help texts, docstrings)."""

_REFERENCE = re.compile(r"docs/method\.md,?[\s#]*\(?((?:[\s#]*(?:,|and)?[\s#]*\*[^*]+\*)+)")
_NAME = re.compile(r"\*([^*]+)\*")
_ANCHOR = re.compile(r"docs/method\.md#([\w-]+)")


def _normalise(name: str) -> str:
    """A section name as written in a reference or heading, with line breaks (and comment marks) as one space."""
    return re.sub(r"\s*\n[\s#]*", " ", name).strip(" *_").casefold()


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(r"^#{1,6}\s+(.*?)\s*#*\s*$", path.read_text("utf-8"), re.M)]


def _references(text: str) -> list[tuple[int, str]]:
    """(line number, section name) of every "docs/method.md, *Section*" (or "docs/method.md (*A*, *B*)") in text."""
    found = []
    for match in _REFERENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        found += [(line, name) for name in _NAME.findall(match.group(1))]
    return found


def _listed_files() -> list[Path]:
    """The ``*.py`` and ``*.md`` files git lists: tracked, and new ones that are not ignored."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot list the project's files")
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.py", "*.md"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    if listed.returncode != 0:
        pytest.skip(f"not a git work tree, cannot list the project's files: {listed.stderr.strip()}")
    return [ROOT / name for name in listed.stdout.split("\0") if name and (ROOT / name).is_file()]


def test_method_document_has_the_agreed_sections():
    headings = {_normalise(h) for h in _headings(METHOD_DOC)}
    missing = [s for s in AGREED_SECTIONS if _normalise(s) not in headings]
    assert not missing, f"docs/method.md lacks the sections {missing}"


def test_no_file_points_to_the_private_notes():
    hits = []
    for path in _listed_files():
        for number, line in enumerate(path.read_text("utf-8", errors="replace").splitlines(), 1):
            if PRIVATE_NOTES in line:
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not hits, (f"{len(hits)} line(s) cite {PRIVATE_NOTES}, which does not ship; cite docs/method.md, "
                      "*Section* instead:\n" + "\n".join(hits))


def test_every_method_reference_names_an_existing_section():
    headings = _headings(METHOD_DOC)
    names = {_normalise(h) for h in headings}
    slugs = {_slug(h) for h in headings}
    bad, n_refs = [], 0
    for path in _listed_files():
        if path == Path(__file__).resolve():
            continue
        text = path.read_text("utf-8", errors="replace")
        for line, name in _references(text):
            n_refs += 1
            if _normalise(name) not in names and not re.search(r"\{\w*\}", name):
                bad.append(f"{path.relative_to(ROOT)}:{line}: *{' '.join(name.split())}*")
        for match in _ANCHOR.finditer(text):
            if match.group(1) not in slugs:
                bad.append(f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}: #{match.group(1)}")
    assert n_refs > 0, "no reference to docs/method.md found: is the file list empty?"
    assert not bad, "references to sections docs/method.md does not have:\n" + "\n".join(bad)


@pytest.mark.parametrize(("text", "expected"), [
    ("see docs/method.md, *Node weights*.", ["Node weights"]),
    ("(docs/method.md, *MCM and MCLoss*,\n*ZLPR*)", ["MCM and MCLoss", "ZLPR"]),
    ("docs/method.md (*Ensembles*, *Focal\n    weighting*) and", ["Ensembles", "Focal\n    weighting"]),
    ("# as in docs/method.md,\n    # *Data and hierarchy*: more", ["Data and hierarchy"]),
    ("`docs/method.md`; the docstrings point to *its* sections", []),
])
def test_reference_pattern(text, expected):
    assert [name for _, name in _references(text)] == expected


def test_the_checks_catch_a_wrong_section_and_an_unknown_anchor():
    headings = _headings(METHOD_DOC)
    names, slugs = {_normalise(h) for h in headings}, {_slug(h) for h in headings}
    (_, name), = _references("see docs/method.md, *Node weighting*")
    assert _normalise(name) not in names
    assert _normalise("Focal\n    # weighting") in names
    assert _slug("LPROS, schedules and the mixed loss") in slugs and "lpros-schedules" not in slugs
