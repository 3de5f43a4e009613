"""The one record every check returns: which patient, which file, what is wrong."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ERROR = "error"      # the case cannot be used
WARNING = "warning"  # the case is used, but something was changed or looks suspicious


@dataclass(frozen=True)
class Problem:
    """One finding about one patient.

    Parameters
    ----------
    patient_id : str
        The patient the finding concerns (``"*"`` for release-wide findings).
    file : str
        The file (path as given) the finding concerns, or ``""``.
    code : str
        Short machine-readable code, e.g. ``"missing_modality"``, ``"pet_units_bqml"``.
    message : str
        Human-readable explanation.
    severity : str
        ``"error"`` (case unusable) or ``"warning"`` (case usable).
    """

    patient_id: str
    file: str
    code: str
    message: str
    severity: str = ERROR

    @property
    def usable(self) -> bool:
        """Whether the case can still be used despite this finding."""
        return self.severity != ERROR

    def __str__(self) -> str:
        where = f" [{self.file}]" if self.file else ""
        return f"{self.severity.upper()} {self.patient_id}{where}: {self.message} ({self.code})"

    def to_dict(self) -> dict:
        return asdict(self)


def format_report(problems: list[Problem]) -> str:
    """A plain-text table of problems, errors first, grouped by patient."""
    if not problems:
        return "No problems found."
    rows = sorted(problems, key=lambda p: (p.usable, p.patient_id, p.code))
    lines = [f"{len(problems)} problem(s): "
             f"{sum(not p.usable for p in problems)} error(s), {sum(p.usable for p in problems)} warning(s)"]
    lines += [f"  {p}" for p in rows]
    return "\n".join(lines)


class ProblemsError(ValueError):
    """Inputs that cannot be used; the message lists every patient and file concerned."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__(format_report(problems))


class CaseError(Exception):
    """A case cannot be processed; carries the problems that say why."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))
