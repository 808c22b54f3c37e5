"""What nbval alone does not check about the committed notebooks.

nbval ignores a cell that was never run, so a notebook committed half-executed would pass it:
here execution counts must be exactly 1..N. Also: most outputs are really compared, every
notebook has the course's skeleton, and ends by cleaning up.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
IGNORE = re.compile(r"#\s*NBVAL_(IGNORE_OUTPUT|SKIP)")
CJK = re.compile(r"[\u4e00-\u9fff]")


def cells(nb: Path, kind: str = "code") -> list[dict]:
    return [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == kind]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS and NOTEBOOKS[0].name.startswith("00_")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_name_is_nn_topic(nb):
    assert re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", nb.name)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_execution_counts_are_1_to_n(nb):
    counts = [c["execution_count"] for c in cells(nb) if source(c).strip()]
    assert counts == list(range(1, len(counts) + 1)), (
        f"{nb.name}: execution counts {counts} — re-run it top to bottom: ./course execute {nb.relative_to(nb.parent.parent)}")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_at_least_80_percent_of_cells_with_output_are_compared(nb):
    with_output = [c for c in cells(nb) if c.get("outputs")]
    ignored = [c for c in with_output
               if IGNORE.search(source(c)) or {"nbval-ignore-output", "nbval-skip"} & set(c["metadata"].get("tags", []))]
    assert with_output, f"{nb.name} has no outputs"
    assert len(ignored) <= 0.2 * len(with_output), f"{nb.name}: {len(ignored)}/{len(with_output)} outputs ignored"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_no_error_outputs_unless_expected(nb):
    for c in cells(nb):
        errors = [o for o in c.get("outputs", []) if o["output_type"] == "error"]
        expected = "raises-exception" in c["metadata"].get("tags", []) or "NBVAL_RAISES_EXCEPTION" in source(c)
        assert not errors or expected, f"{nb.name}: unexpected error in cell: {source(c)[:80]!r}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton(nb):
    md = "\n".join(source(c) for c in cells(nb, "markdown"))
    title = source(cells(nb, "markdown")[0]).splitlines()[0]
    assert title.startswith(f"# {nb.name[:2]} · ") and CJK.search(title), f"{nb.name}: title in English and Chinese"
    for heading in ("## Overview", "## Setup", "## Exercises", "## Summary", "## Clean-up"):
        assert re.search(rf"^{heading}", md, re.M), f"{nb.name}: missing '{heading}'"
    sections = [h for h in re.findall(r"^##+ .*$", md, re.M)]
    assert all(CJK.search(h) for h in sections if h.startswith("## ") and not h.startswith("## Overview")), f"{nb.name}: a ## heading lacks its Chinese term"
    assert "```bash" in md, f"{nb.name}: no CLI form"
    assert source(cells(nb)[0]).count("connect()") == 1, f"{nb.name}: the first code cell is the setup cell"
    assert "run.cleanup()" in source(cells(nb)[-1]), f"{nb.name}: the last code cell must be run.cleanup()"


def test_no_checkpoints_or_build_output_committed():
    import subprocess
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True,
                             cwd=NOTEBOOKS[0].parent.parent).stdout.split()
    bad = [t for t in tracked if ".ipynb_checkpoints" in t or t.endswith((".tar", ".pyc")) or "egg-info" in t]
    assert not bad, bad


#: A listing of images straight from the API: on the containerd image store it fails as a whole
#: ("content … not found") when another learner removes an image meanwhile (moby/moby#46077).
RAW_IMAGE_LISTING = re.compile(r"\b(?:api\.images|images\.list)\s*\(")


def raw_image_listings(code: str) -> list[str]:
    """The lines of ``code`` (comments dropped, as tests/test_safety.py reads code) that list
    images with a raw ``client.api.images(...)`` or ``client.images.list(...)``."""
    from tests.test_safety import _without_comments

    return [line.strip() for line in _without_comments(code).splitlines() if RAW_IMAGE_LISTING.search(line)]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.name)
def test_image_listings_are_asked_again_when_an_image_vanishes(nb):
    """Every image listing in a notebook goes through ``list_images`` (helpers/images.py), which
    asks again when the containerd store loses an image under it (01's "the image is gone" cell
    once raised, in a class-sized run, with a raw listing)."""
    found = [line for c in cells(nb) for line in raw_image_listings(source(c))]
    assert not found, f"{nb.name} lists images without list_images: {found}"


def test_a_raw_image_listing_is_found():
    assert raw_image_listings('ids = {i["Id"] for i in client.api.images(all=True)}')
    assert raw_image_listings("tags = [t for i in client.images.list() for t in i.tags]")
    assert raw_image_listings('print("#", client.api.images())')      # a "#" in a string hides nothing
    assert not raw_image_listings("ids = list_images(client, all=True)  # client.api.images(all=True)")
    assert not raw_image_listings("images_table(list_images(client))")
