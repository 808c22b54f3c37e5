"""README: exactly two quick-start commands, CI runs the test one, the contents list every
notebook under its own title, and every relative link resolves."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = quick_start_commands()
    assert commands == ["./course open", "./course test"]
    ci = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines()
          if line.strip() and not line.startswith("#")]
    assert "exec ./course test" in ci


def test_contents_list_every_notebook_with_its_title():
    rows = re.findall(r"^\| (\d\d) \| \[(.+?)\]\((notebooks/[^)]+)\)", README, re.M)
    listed = {path for _, _, path in rows}
    present = {f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert listed == present
    for number, title, path in rows:
        first = "".join(json.loads((ROOT / path).read_text())["cells"][0]["source"]).splitlines()[0]
        assert first == f"# {number} · {title}", (first, title)


def test_relative_links_resolve():
    for doc in [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http://", "https://", "mailto:")):
                assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"
