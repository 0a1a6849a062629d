"""The documentation in docs/ stays true: generated pages, links, examples, commands."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO

from harness.cli import build_parser
from harness.hookdocs import render
from harness.testing import LossContract

DOCS = REPO / "docs"
#: every page, the example package's README included (not .pytest_cache's)
PAGES = sorted(
    page
    for page in DOCS.rglob("*.md")
    if not any(part.startswith(".") for part in page.relative_to(DOCS).parts)
)

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"``.*?``|`[^`\n]*`", re.DOTALL)
_INLINE_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)


def test_hooks_md_is_current():
    committed = (DOCS / "hooks.md").read_text()
    assert committed == render(), (
        "docs/hooks.md is stale: run python -m harness.hookdocs > docs/hooks.md"
    )


def prose(text: str) -> str:
    """The Markdown without code blocks and code spans (no links live there)."""
    return _CODE_SPAN.sub("", _FENCE.sub("", text))


def links(page: Path) -> list[str]:
    text = prose(page.read_text())
    return _INLINE_LINK.findall(text) + _REFERENCE.findall(text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower-case, punctuation dropped, - for spaces."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text())  # a "# comment" in code is no heading
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, re.MULTILINE)
    return {slug(h) for h in headings}


def test_there_are_pages_to_check():
    names = {p.name for p in PAGES}
    assert {"index.md", "hooks.md", "writing-plugins.md", "contracts.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_point_at_existing_files(page):
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:...
            continue
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target} (no file {resolved})")
        elif (
            fragment and resolved.suffix == ".md" and fragment not in anchors(resolved)
        ):
            broken.append(f"{target} (no heading #{fragment} in {resolved.name})")
    assert not broken, f"{page.relative_to(REPO)}: broken links: {broken}"


def python_block(page: str, marker: str) -> str:
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return next(b for b in blocks if marker in b)


def test_writing_plugins_example_loss_passes_the_loss_contract():
    namespace: dict[str, object] = {}
    source = python_block("writing-plugins.md", "class SquaredHinge")
    exec(compile(source, "docs/writing-plugins.md", "exec"), namespace)
    contract = type(
        "TestSquaredHinge", (LossContract,), {"loss_cls": namespace["SquaredHinge"]}
    )
    case = contract()
    for name in dir(contract):
        if name.startswith("test_"):
            getattr(case, name)()


def shell_commands() -> list[tuple[str, str]]:
    """Every ``harness ...`` line of the ```sh blocks, continuations joined."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```sh\n(.*?)```", page.read_text(), re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                if words[:1] == ["harness"]:
                    found.append((str(page.relative_to(DOCS)), shlex.join(words)))
    return found


COMMANDS = shell_commands()


@pytest.mark.parametrize(
    ("page", "command"), COMMANDS, ids=[f"{p}-{i}" for i, (p, _) in enumerate(COMMANDS)]
)
def test_documented_commands_parse(page, command, capsys):
    """Every option a page shows exists (argparse accepts the command line)."""
    try:
        build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"{page}: `{command}` does not parse: {capsys.readouterr().err}")


def test_the_suite_example_loads_and_expands(tmp_path):
    from harness.config import expand_matrix, load_suite
    from harness.plugin import PluginOptions, make_plugin_host

    text = (DOCS / "running-benches.md").read_text()
    (block,) = re.findall(r"```toml\n(.*?)```", text, re.DOTALL)
    (tmp_path / "suite.toml").write_text(block)
    suite = load_suite(str(tmp_path / "suite.toml"))
    host = make_plugin_host(PluginOptions(autoload=False))
    specs = expand_matrix(host.registries, suites=[suite]).specs
    assert {s.loss for s in specs} == {"infonce", "margin"} and len(specs) % 3 == 0
    simans = [s for s in specs if s.sampler == "simans"]
    assert simans and all(s.params["sampler"] == {"a": 0.5} for s in simans)
    assert all(s.params["task"] == {"epochs": 2} for s in specs)
