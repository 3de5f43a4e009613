"""The README and docs/ stay true: generated tables current, links alive, commands and options real.

Fast: the console scripts' ``--help`` is read in process (each script's ``main`` from
``pyproject.toml``'s ``[project.scripts]``), nothing is run.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
import shlex
import tomllib
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.rglob("*.md"))]
MAX_README_LINES = 160

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")
OPTION = re.compile(r"^--?[A-Za-z][\w-]*")
#: paths named in the text that are outputs, not files of the repository
OUTPUTS = {"benchmarks/results/gpu_check.json"}
#: a path of the repository named in text or code: files and folders under its top-level folders
REPO_PATH = re.compile(r"(?<![\w/.$~-])((?:docs|tests|benchmarks|hecktor_nnunet|prognosis|dataset_conversion|trainers)"
                       r"/[\w./-]*[\w/])")
#: the code and build files whose paths must exist too
CODE = sorted(p for folder in ("hecktor_nnunet", "prognosis", "dataset_conversion", "trainers", "tests", "benchmarks")
              for p in (ROOT / folder).rglob("*.py") if p != Path(__file__)) + [ROOT / "Makefile", ROOT / "pyproject.toml"]


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _prose_and_blocks(text: str) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Lines outside code fences, and the fenced blocks as (language, lines)."""
    prose, blocks, current = [], [], None
    for line in text.split("\n"):
        m = FENCE.match(line.strip())
        if m and current is None:
            current = (m[1], [])
        elif line.strip() == "```" and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current[1].append(line)
        else:
            prose.append(line)
    return prose, blocks


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lstrip("#").strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    prose, _ = _prose_and_blocks(path.read_text())
    return {_slug(line) for line in prose if line.startswith("#")}


# -- generated tables --------------------------------------------------------------------------------
def test_generated_tables_are_current():
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    problems = tables.update(DOCS, check=True)
    assert not problems, "run `python benchmarks/tables.py`:\n" + "\n".join(problems)


def test_tables_check_reports_a_stale_table(tmp_path):
    spec = importlib.util.spec_from_file_location("tables", ROOT / "benchmarks" / "tables.py")
    tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tables)
    docs = tmp_path / "docs"
    docs.mkdir()
    blocks = "\n".join(f"{tables.begin_marker(n)}\nold\n{tables.end_marker(n)}" for n in tables.TABLES)
    page = docs / "page.md"
    page.write_text(f"# page\n{blocks}\n<!-- table:nonesuch:begin -->\nx\n<!-- table:nonesuch:end -->\n")
    problems = tables.update(docs, check=True)
    assert "docs/page.md: table 'radiomics' is stale" in problems
    assert "docs/page.md: unknown table 'nonesuch'" in problems
    assert "old" in page.read_text()  # --check changes nothing
    assert tables.update(docs) == ["docs/page.md: unknown table 'nonesuch'"]
    assert tables.update(docs, check=True) == ["docs/page.md: unknown table 'nonesuch'"]
    assert "\nold\n" not in page.read_text() and not list(docs.glob(".*.tmp"))


# -- links and paths ---------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_point_at_existing_files_and_headings(page):
    prose, _ = _prose_and_blocks(page.read_text())
    broken = []
    for line in prose:
        for target in LINK.findall(line):
            if re.match(r"^[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{target}: no file {dest}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{_rel(page)}:\n" + "\n".join(broken)


def _missing_paths(text: str) -> list[str]:
    """Repository paths named in ``text`` that do not exist (outputs and glob patterns left out)."""
    missing = []
    for path in sorted(set(REPO_PATH.findall(text))):
        path = path.rstrip(".")
        if path in OUTPUTS or any(c in path for c in "*?"):
            continue
        if not (ROOT / path).exists():
            missing.append(path)
    return missing


@pytest.mark.parametrize("page", PAGES + CODE, ids=_rel)
def test_repository_paths_named_in_the_text_exist(page):
    missing = _missing_paths(page.read_text())
    assert not missing, f"{_rel(page)} names paths that do not exist: {missing}"


def test_the_path_check_finds_a_dangling_one():
    assert _missing_paths("see docs/demo.md and tests/data/ and docs/howto/demo.md") == ["docs/demo.md", "tests/data/"]


def test_readme_is_a_front_door():
    text = README.read_text()
    assert len(text.split("\n")) <= MAX_README_LINES
    first_screen = "\n".join(text.split("\n")[:60])
    assert "make demo" in first_screen and "make test" in first_screen
    assert "<!-- quickstart:begin -->" in first_screen
    assert "pyradiomics-bhklab" in text  # the pinned dependency keeps its reason on the front door


# -- commands and options ------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def _scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@lru_cache(maxsize=None)
def _help(script: str, sub: str | None = None) -> str:
    module, _, func = _scripts()[script].partition(":")
    main = getattr(importlib.import_module(module), func)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main([sub, "--help"] if sub else ["--help"])
        except SystemExit:
            pass
    return out.getvalue()


def _subcommands(script: str) -> set[str]:
    """The subcommands of ``script`` (``{seg,rfs,hpv} ...`` in its usage line), or none."""
    usage = _help(script).split("\n\n")[0].replace("\n", " ")
    m = re.search(r"(?<!\[)\{([\w,-]+)\}\s+\.\.\.", usage)
    return set(m[1].split(",")) if m else set()


def _logical_lines(lines: list[str]) -> list[str]:
    """Lines with backslash continuations joined."""
    out, acc = [], ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            acc += line.rstrip()[:-1] + " "
            continue
        out.append(acc + line)
        acc = ""
    return out + ([acc] if acc else [])


def _tokens(segment: str) -> list[str]:
    try:
        return shlex.split(segment, comments=True)
    except ValueError:
        return segment.split("#")[0].split()


def command_uses(text: str) -> list[tuple[str, str | None, list[str], str]]:
    """Every console-script call in the ``bash`` blocks of ``text``: (script, subcommand, options, line)."""
    uses = []
    _, blocks = _prose_and_blocks(text)
    names = sorted(_scripts(), key=len, reverse=True)
    call = re.compile(r"(?<![\w/.-])(" + "|".join(map(re.escape, names)) + r")(?![\w-])")
    for lang, lines in blocks:
        if lang not in ("bash", "sh", "shell", ""):
            continue
        for line in _logical_lines(lines):
            code = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
            for m in call.finditer(code):
                segment = re.split(r";|&&|\|\||(?<![\[\w])\|(?![\w\]])|\)", code[m.end():])[0]
                tokens = _tokens(segment)
                script, sub = m[1], None
                if tokens and tokens[0] in _subcommands(script):
                    sub = tokens.pop(0)
                options = []
                for token in tokens:
                    for piece in token.strip("[]").split("|"):
                        opt = OPTION.match(piece.strip("[]").split("=")[0])
                        if opt:
                            options.append(opt[0])
                uses.append((script, sub, options, line.strip()))
    return uses


def test_command_parser_finds_scripts_subcommands_and_options():
    text = ("```bash\nexport X=1\neval \"$(hecktor-nnunet env)\"   # comment --not-an-option\n"
            "hecktor-evaluate seg --truth a \\\n    --pred b -o c [--resample-nearest]\n"
            "for f in 0 1; do hecktor-predict -i x -o y -f $f -device cpu; done\n```\n"
            "```python\nhecktor-convert --nonsense\n```\n")
    assert command_uses(text) == [
        ("hecktor-nnunet", "env", [], 'eval "$(hecktor-nnunet env)"   # comment --not-an-option'),
        ("hecktor-evaluate", "seg", ["--truth", "--pred", "-o", "--resample-nearest"],
         "hecktor-evaluate seg --truth a      --pred b -o c [--resample-nearest]"),
        ("hecktor-predict", None, ["-i", "-o", "-f", "-device"],
         "for f in 0 1; do hecktor-predict -i x -o y -f $f -device cpu; done")]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_every_console_script_and_option_shown_exists(page):
    wrong = []
    for script, sub, options, line in command_uses(page.read_text()):
        subs = _subcommands(script)
        if subs and sub is None and not (set(options) <= {"-h", "--help"}):
            wrong.append(f"{script}: no subcommand (one of {sorted(subs)}) in: {line}")
            continue
        text = _help(script, sub)
        for opt in options:
            if not re.search(r"(?<![\w-])" + re.escape(opt) + r"(?![\w-])", text):
                wrong.append(f"{script}{' ' + sub if sub else ''}: no option {opt} in: {line}")
    assert not wrong, f"{_rel(page)}:\n" + "\n".join(wrong)


def test_make_targets_shown_exist():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([\w-]+):", makefile, flags=re.M))
    for page in PAGES:
        _, blocks = _prose_and_blocks(page.read_text())
        for _, lines in blocks:
            for line in lines:
                m = re.match(r"\s*make\s+([\w-]+)", line)
                if m:
                    assert m[1] in targets, f"{_rel(page)}: make {m[1]} is not a Makefile target"
