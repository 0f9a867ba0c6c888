"""Every shell command in the README and docs/*.md runs as written after the Quickstart: its
program is in the venv (the pages assume `source .venv/bin/activate`) or is a standard tool,
each `python -m X` (also `torchrun`/`accelerate launch ... -m X`) names a module the venv finds,
each script it runs exists, each `dragonfly-eval <sub>` is a subcommand, and the links between
the pages resolve."""

from __future__ import annotations

import argparse
import importlib.util
import re
import shlex
import sys
from pathlib import Path

import pytest

from dragonfly_eval.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
VENV_BIN = Path(sys.prefix) / "bin"
SHELL_LANGS = {"bash", "sh", "shell", "console"}
# Programs a fresh machine has without the venv (coreutils, the shell and its built-ins, git, apt).
STANDARD = {
    "bash", "sh", "cd", "source", ".", "export", "git", "rm", "cp", "mv", "mkdir", "ls", "cat",
    "echo", "env", "apt-get", "sudo", "true",
}  # fmt: skip
SEPARATORS = {"&&", "||", ";", "|"}
# Programs the bootstrap does not install; a page naming one must say how to install it.
INSTALL_FIRST = {"tox": "pip install tox"}
# Inline code in the prose that is a command: a program's name, then arguments.
INLINE = re.compile(
    r"(\S+=\S+ )*(python3?|dragonfly-eval|lmms-eval|hf|bash|torchrun|accelerate|pip|tox|ruff"
    r"|\.venv/bin/\S+) "
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of each fenced code block, indented ones included."""
    blocks = []
    pattern = r"^( *)```(\S*)\n(.*?)^\1```\s*$"
    for match in re.finditer(pattern, text, flags=re.S | re.M):
        indent = len(match.group(1))
        body = "\n".join(line[indent:] for line in match.group(3).splitlines())
        blocks.append((match.group(2), body))
    return blocks


def shell_lines(lang: str, body: str) -> list[str]:
    """The command lines of a block: continuation lines joined; in a console block only the
    lines after a `$ ` prompt."""
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = []
    for line in joined.splitlines():
        if lang == "console":
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line)
    return lines


def page_commands() -> list[tuple[str, str]]:
    """(page, command line) for every shell command on every page."""
    found = []
    for page in PAGES:
        for lang, body in fenced_blocks(page.read_text(encoding="utf-8")):
            if lang in SHELL_LANGS:
                found += [(page.name, line) for line in shell_lines(lang, body)]
        found += [(page.name, span) for span in inline_commands(page.read_text(encoding="utf-8"))]
    return found


def inline_commands(text: str) -> list[str]:
    """Commands written as inline code in the prose (`hf auth login`), outside code blocks;
    abbreviations with `...` are left out."""
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    spans = re.findall(r"`([^`\n]+)`", prose)
    return [
        span
        for span in spans
        if INLINE.match(span) and "..." not in span and not span.endswith(" -m")
    ]


def simple_commands(line: str) -> list[list[str]]:
    """A command line split at `&&`, `||`, `;` and `|`, with leading VAR=value dropped."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars="&|;")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands, current = [], []
    for token in lexer:
        if token in SEPARATORS:
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    out = []
    for words in commands:
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        if words:
            out.append(words)
    return out


def subcommands() -> set[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


def problems(line: str) -> list[str]:
    """What would fail in one command line, run from the repository root in the venv."""
    found, cwd = [], REPO
    for words in simple_commands(line):
        program, args = words[0], words[1:]
        if program == "cd":
            cwd = (cwd / args[0]) if args else REPO
            continue
        name = program
        if program.startswith(".venv/bin/"):
            # the repository's .venv: the venv running this test (under tox it lives elsewhere)
            name = program.removeprefix(".venv/bin/")
            if cwd != REPO:
                found.append(f"{program} run from {cwd}, not the repository root")
            elif not (VENV_BIN / name).exists():
                found.append(f"{program}: the venv has no {name}")
        elif "/" in program:
            found.append(f"{program}: run programs from the venv or by name")
            continue
        elif program in INSTALL_FIRST:
            continue  # checked by test_programs_to_install_are_introduced_with_their_install
        elif program not in STANDARD and not (VENV_BIN / program).exists():
            found.append(f"`{program}` is neither in the venv's bin nor a standard tool")
        if program == "source" and (args != [".venv/bin/activate"] or cwd != REPO):
            found.append(f"source {' '.join(args)}: activate the venv from the repository root")
        if name in {"python", "python3", "torchrun", "accelerate"} and "-m" in args:
            module = args[args.index("-m") + 1] if args[-1] != "-m" else ""
            if not module or importlib.util.find_spec(module) is None:
                found.append(f"`python -m {module}`: the venv has no module {module}")
        elif name in {"python", "python3", "bash"} and args and not args[0].startswith("-"):
            script = cwd / args[0]
            if cwd.exists() and not script.is_file():
                found.append(f"{name} {args[0]}: no such file (from {cwd})")
        if name == "dragonfly-eval":
            sub = next((a for a in args if not a.startswith("-")), None)
            if sub not in subcommands():
                found.append(f"`dragonfly-eval {sub}` is not a subcommand")
    return found


COMMANDS = page_commands()


def test_the_pages_show_commands():
    pages = {page for page, _ in COMMANDS}
    assert "README.md" in pages and len(COMMANDS) > 30, pages
    # a command hidden in an unlabelled block would escape this test
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        openers = re.findall(r"^ *```(\S*)\n(?:.*?)^ *```\s*$", text, flags=re.S | re.M)
        assert all(openers), f"{page.name}: a code block without a language"


@pytest.mark.parametrize(
    ("page", "line"), COMMANDS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(COMMANDS)]
)
def test_every_command_runs_in_the_venv(page, line):
    if page == "vllm.md" and importlib.util.find_spec("vllm") is None:
        pytest.skip("docs/vllm.md's commands need vLLM: VLLM=1 bash scripts/bootstrap.sh")
    assert not problems(line), f"{page}: {line}"


def test_the_one_activation_step_is_stated_where_a_reader_starts():
    """Bare `lmms-eval`, `python`, `hf` run the venv's only after `source .venv/bin/activate`:
    the README's Quickstart gives it as a command, and each docs page says at its top that its
    commands assume it."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme[readme.index("## Quickstart") :].split("\n## ", 1)[0]
    blocks = [body for lang, body in fenced_blocks(quickstart) if lang == "bash"]
    assert any(body.strip() == "source .venv/bin/activate" for body in blocks), blocks
    for page in PAGES[1:]:
        top = "\n".join(page.read_text(encoding="utf-8").splitlines()[:8])
        assert "source .venv/bin/activate" in top, f"{page.name} does not say its commands need it"


def test_programs_to_install_are_introduced_with_their_install():
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for program, install in INSTALL_FIRST.items():
            if re.search(rf"`{program}\b", text):
                assert install in text, f"{page.name} names `{program}` but not `{install}`"


def test_the_checker_catches_what_a_newcomer_met():
    assert problems("hf2 download x")
    assert problems("python -m dragonfly_eval.tasks.no_such_module hub")
    assert problems("dragonfly-eval leaderbord out/")
    assert problems("python bench/no_such_bench.py")
    assert problems("cd hub && .venv/bin/lmms-eval --tasks x")  # no .venv in hub/
    assert problems("cd hub && source .venv/bin/activate")
    assert not problems(".venv/bin/python -m pytest -q")
    assert inline_commands("run `hf auth login`, not `hf ...`") == ["hf auth login"]
    assert not problems("python -m dragonfly_eval.datagen.make_hub_layout hub")
    assert not problems("cd bench && python preprocess.py")
    assert not problems("OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 -m lmms_eval --model x")


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_links_between_the_pages_resolve():
    """A section moved to another page leaves no link to where it was."""
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken
