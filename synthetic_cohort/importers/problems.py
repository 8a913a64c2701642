"""Problems found in an import: each names its file, row and column, and all are reported at once."""

from __future__ import annotations

from dataclasses import dataclass, field

from features.errors import UserInputError

MAX_LISTED = 50


@dataclass(frozen=True)
class Problem:
    file: str
    row: str  # a CSV data row ("row 2" is the first row under the header) or a FHIR "entry 3"
    column: str
    message: str

    def __str__(self) -> str:
        where = ", ".join(part for part in (self.file, self.row, self.column and f"column {self.column}") if part)
        return f"{where}: {self.message}"


class ImportProblems(UserInputError):
    """The input has problems; nothing was written. ``problems`` lists every one."""

    def __init__(self, source: str, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        lines = [
            f"The import from {source} found {count} problem{'s' if count != 1 else ''} "
            "and wrote nothing:"
        ]
        lines += [f"  - {problem}" for problem in self.problems[:MAX_LISTED]]
        if count > MAX_LISTED:
            lines.append(f"  ... and {count - MAX_LISTED} more (see ImportProblems.problems).")
        super().__init__("\n".join(lines))


@dataclass
class ProblemLog:
    """Collects problems while reading so one report can list them all."""

    problems: list[Problem] = field(default_factory=list)

    def add(self, file: str, row: str | int | None, column: str | None, message: str) -> None:
        if isinstance(row, int):
            row = f"row {row}"
        self.problems.append(Problem(file, row or "", column or "", message))

    def raise_if_any(self, source: str) -> None:
        if self.problems:
            raise ImportProblems(source, self.problems)
