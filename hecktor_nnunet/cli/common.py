"""Small helpers shared by the command-line modules."""

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


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default, unless its help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default is None or action.default is False or action.default is argparse.SUPPRESS
                or action.default == [] or "default" in text or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"
