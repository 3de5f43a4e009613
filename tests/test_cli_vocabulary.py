"""Every command speaks one vocabulary (hecktor_nnunet/cli/common.py): one spelling per meaning, nnU-Net's
where nnU-Net has one, every default shown in ``--help``, old spellings hidden.

The parsers are built by each console script's ``build_parser()`` (pyproject's ``[project.scripts]``)
and walked, subcommands included; nothing is run.
"""

from __future__ import annotations

import argparse
import importlib
import tomllib
from pathlib import Path

import pytest

from hecktor_nnunet.cli.common import DefaultsHelpFormatter
from hecktor_nnunet.dataset_conversion.splits import SPLIT_MODES

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
#: short and long spelling of each shared meaning (nnU-Net's short ones)
PAIRS = {"-np": "--workers", "-d": "--dataset-id", "-tr": "--trainer", "-p": "--plans", "-c": "--configuration",
         "-f": "--folds", "-o": None}
#: spellings of other tools or of earlier versions that must not be visible
RETIRED = {"--bootstrap", "--threads", "--cv", "--disable-tta", "--step-size", "--device", "--output", "--dataset",
           "--model-folder"}


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, p in action.choices.items():
                yield from _parsers(p, f"{name} {sub}")


def all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for script, target in sorted(SCRIPTS.items()):
        module = importlib.import_module(target.split(":")[0])
        out += list(_parsers(module.build_parser(), script))
    return out


PARSERS = all_parsers()


def _visible(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)]


def test_every_console_script_has_a_parser_to_walk():
    assert {name.split()[0] for name, _ in PARSERS} == set(SCRIPTS)
    assert any(name == "hecktor-prognosis compare" for name, _ in PARSERS)


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_every_default_is_shown_and_every_option_explained(name, parser):
    assert issubclass(parser.formatter_class, DefaultsHelpFormatter), name
    text = parser.format_help()
    for action in _visible(parser):
        assert action.help, f"{name} {action.option_strings} has no help"
        shown = action.default not in (None, False, [], argparse.SUPPRESS)
        if shown:
            line = parser.formatter_class(name)._get_help_string(action)
            assert "default" in line, f"{name} {action.option_strings}: default {action.default!r} not in --help"
    assert "--help" in text


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_one_spelling_for_one_meaning(name, parser):
    for action in _visible(parser):
        opts = set(action.option_strings)
        assert not opts & RETIRED, f"{name}: retired spelling {opts & RETIRED} shown"
        for short, long in PAIRS.items():
            if long and (short in opts or long in opts):
                assert {short, long} <= opts, f"{name}: {sorted(opts)} should be spelled {short}/{long}"
        if "--folds" in opts:
            assert action.nargs == "+", f"{name}: --folds is a list of fold indices; a count is --n-folds"
        if "--n-folds" in opts or "--n-boot" in opts:
            assert action.type is int, name
        if "--splits" in opts:
            assert tuple(action.choices) == SPLIT_MODES, name
        if "--model" in opts:  # a model family; a trained model is a folder (--model-dir)
            assert action.choices, f"{name}: --model names a model family (a folder is --model-dir)"


def test_a_spelling_means_the_same_in_every_command():
    seen: dict[str, set] = {}
    for name, parser in PARSERS:
        for action in _visible(parser):
            # a flag, one value (an option given again adds one), or a list of values after one option
            kind = "flag" if action.nargs == 0 else ("list" if action.nargs in ("+", "*") else "value")
            for opt in action.option_strings:
                seen.setdefault(opt, set()).add(kind)
    clashes = {opt: kinds for opt, kinds in seen.items() if len(kinds) > 1}
    assert not clashes, clashes


def test_quiet_comes_after_the_subcommand():
    for name, parser in PARSERS:
        subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subparsers:
            assert not any("--quiet" in a.option_strings for a in _visible(parser)), name


def test_old_spellings_still_work_for_one_release_and_warn(capsys):
    from hecktor_nnunet.cli.prognosis import build_parser

    a = build_parser().parse_args(["--quiet", "cv", "rfs", "--clinical", "c", "-o", "o", "--cv", "loco",
                                   "--bootstrap", "5", "--folds", "3", "--threads", "2"])
    assert (a.splits, a.n_boot, a.n_folds, a.workers, a.quiet_before) == ("leave-one-centre-out", 5, 3, 2, True)
    err = capsys.readouterr().err
    assert all(f"{old} is now" in err for old in ("--cv", "--bootstrap", "--folds", "--threads", "--quiet"))
