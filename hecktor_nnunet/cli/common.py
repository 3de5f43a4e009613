"""Small helpers shared by the command-line modules, and the option vocabulary they all speak.

One spelling per meaning, nnU-Net's where nnU-Net has one: ``-d``/``--dataset-id`` (a dataset id),
``-tr``, ``-p``, ``-c``, ``-f``/``--folds`` (a list of fold indices), ``--n-folds`` (how many folds
to make), ``--splits centre-stratified|leave-one-centre-out`` (the kind of folds), ``-np``/``--workers``
(worker processes), ``--n-boot`` (bootstrap resamples), ``--seed``, ``--quiet``/``--verbose``
(after the subcommand). Every default is shown in ``--help`` (:class:`DefaultsHelpFormatter`).
Old spellings stay one release as hidden options that warn (:func:`retired_option`).
``tests/test_cli_vocabulary.py`` walks every parser and holds them to this.
"""

from __future__ import annotations

import argparse
import logging
import sys


def setup_logging(quiet: bool = False, verbose: bool = False) -> None:
    """Log to stderr: warnings only under --quiet, debug under --verbose."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def fail(message: str, code: int = 2) -> int:
    """Print an error for the user and return the exit status."""
    print(f"error: {message}", file=sys.stderr)
    return code


def os_error_text(e: OSError) -> str:
    """The user's message for an OSError: this project's own errors already name the file."""
    from hecktor_nnunet.io.atomic_io import FolderBusyError, WriteError
    from hecktor_nnunet.io.image_files import IncompleteFileError

    if isinstance(e, (WriteError, FolderBusyError)):
        return e.strerror
    if isinstance(e, IncompleteFileError):
        return f"{e.filename}: {e.strerror}"
    return str(e)


class DefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """``--help`` shows every option's default, unless its help already says it or there is none to show.

    The description is shown as written (its examples keep their lines).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                or action.default == [] or "default" in text or not action.option_strings):
            return text
        value = action.default
        shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
        shown = shown.replace("%", "%%")
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class _Retired(argparse.Action):
    """A hidden old spelling: stores into the new option's ``dest`` and warns on stderr."""

    def __init__(self, option_strings, dest, new: str = "", convert=None, **kwargs):
        self.new, self.convert = new, convert
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now {self.new}; the old spelling goes in the next release",
              file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values) if self.convert else
                (True if self.nargs == 0 else values))


def retired_option(parser: argparse.ArgumentParser, old: str, new: str, dest: str, *, flag: bool = False,
                   convert=None, **kwargs) -> None:
    """Accept ``old`` (hidden from ``--help``) as the retired spelling of ``new``, with a warning.

    Parameters
    ----------
    old, new : str
        The retired and the current spelling (``new`` is only named in the warning).
    dest : str
        The ``dest`` of the current option.
    flag : bool
        ``old`` takes no value (a ``store_true`` option).
    convert : callable, optional
        Maps the old value to the new option's (e.g. ``loco`` -> ``leave-one-centre-out``).
    """
    parser.add_argument(old, dest=dest, action=_Retired, new=new, convert=convert, help=argparse.SUPPRESS,
                        default=argparse.SUPPRESS, **({"nargs": 0} if flag else {}), **kwargs)


def add_quiet(parser: argparse.ArgumentParser, verbose: bool = False) -> None:
    """``--quiet`` (and ``--verbose``): the same words and help in every command."""
    parser.add_argument("--quiet", action="store_true", help="warnings and errors only, no progress bars")
    if verbose:
        parser.add_argument("--verbose", action="store_true", help="debug messages too")
