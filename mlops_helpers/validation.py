"""The data contract: what a batch of CityBikes data must satisfy before anything is trained on it (notebook 05).

The contract is checked on the data as the source system delivers it (the ``Bikeshare.csv`` format), before any
parsing, so that a broken batch is described completely (every violation, with how many rows) instead of failing on
the first bad value. The pipeline refuses a batch with any violation; nothing is trained or registered.

A file that is not a table at all (empty, not UTF-8, ragged lines) is a violation too, found by
:meth:`DataContract.check_file` with the line and column to look at, never a parser's traceback. Every refusal says
what is wrong and what to do about it (:meth:`ValidationReport.explain`).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from mlops_helpers.data import MONTHS, WEATHER


@dataclass(frozen=True)
class ColumnRule:
    """What one column must hold. ``kind`` is ``int``, ``float`` or ``category``."""

    column: str
    kind: str
    minimum: float | None = None
    maximum: float | None = None
    allowed: tuple[str, ...] | None = None
    nullable: bool = False


@dataclass(frozen=True)
class Violation:
    """One broken rule: which column, which check, what was found, and in how many rows."""

    column: str
    check: str
    detail: str
    rows: int = 0


#: What to do about each kind of violation: the pipeline prints it under a refusal (``{min_rows}``: the contract's
#: minimum).
FIXES = {
    "file": "export the batch again: a CSV file with a header line and at least {min_rows} rows",
    "encoding": "save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 batch.csv > batch-utf8.csv`)",
    "format": "give every line as many comma-separated fields as the header line: repair or drop the broken lines",
    "present": "add the missing column(s)",
    "expected": "drop or rename the column(s) the contract does not know",
    "min_rows": "send at least {min_rows} hourly rows (a week); a header without rows is not a batch",
    "unique": "send each hour (day, hr) once: drop the repeated rows",
    "window": "send only the hours inside the window, or run with the --window the batch covers",
}
#: The fix for the value checks (not_null, type, range, allowed, sum).
FIX_VALUES = (
    "fix these values at the source and export the batch again (if the source changed on purpose, change the "
    "contract in mlops_helpers.validation first)"
)
#: How many violations :meth:`ValidationReport.explain` lists one by one.
SHOWN = 8


@dataclass
class ValidationReport:
    """The outcome of checking one batch against a contract (and, for :meth:`explain`, what the contract expects)."""

    rows: int
    violations: list[Violation] = field(default_factory=list)
    expected: tuple[str, ...] = ()
    min_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_frame(self) -> pd.DataFrame:
        """The violations as a table (empty when the batch passed)."""
        return pd.DataFrame([asdict(v) for v in self.violations], columns=["column", "check", "detail", "rows"])

    def to_dict(self) -> dict:
        found = {"ok": self.ok, "rows": self.rows, "violations": [asdict(v) for v in self.violations]}
        return found if self.ok else {**found, "what_to_do": self.fixes(), "expected_columns": list(self.expected)}

    def verdict(self) -> str:
        """One line: passed; the violation itself when there are one or two; else how many, in which columns."""
        if self.ok:
            return f"data contract: passed ({self.rows} rows)"
        if len(self.violations) <= 2:
            return "data contract: REFUSED, " + "; ".join(_describe(v) for v in self.violations)
        columns = sorted({v.column for v in self.violations})
        return f"data contract: REFUSED, {len(self.violations)} violation(s) in {', '.join(columns)}"

    def fixes(self) -> list[str]:
        """What to do, once per kind of violation found, in the order found."""
        found = [FIXES.get(v.check, FIX_VALUES).format(min_rows=self.min_rows) for v in self.violations]
        return list(dict.fromkeys(found))

    def explain(self) -> list[str]:
        """The lines under a refusal: each violation (the first :data:`SHOWN`), then what to do."""
        lines = [f"- {_describe(v)}" for v in self.violations[:SHOWN]]
        if len(self.violations) > SHOWN:
            lines.append(f"- ... and {len(self.violations) - SHOWN} more")
        if {"present", "expected"} & {v.check for v in self.violations}:
            lines.append(f"expected columns: {', '.join(self.expected)}")
        return lines + [f"what to do: {fix}" for fix in self.fixes()]


def _describe(violation: Violation) -> str:
    where = "the batch" if violation.column == "*" else violation.column
    rows = f" ({violation.rows} row{'' if violation.rows == 1 else 's'})" if violation.rows else ""
    return f"{where}: {violation.detail}{rows}"


@dataclass(frozen=True)
class DataContract:
    """Columns and their rules, a minimum row count, and the calendar year the day-of-year column counts in."""

    rules: tuple[ColumnRule, ...]
    min_rows: int
    year: int = 2011
    target_parts: tuple[str, ...] = ("casual", "registered")
    target: str = "bikers"

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(rule.column for rule in self.rules)

    def check_file(
        self, path: str | Path, window: tuple[str, str] | None = None
    ) -> tuple[pd.DataFrame | None, ValidationReport]:
        """Read a CSV batch and check it: the raw frame (None when the file is not a readable table) and the report.

        A missing or empty file, bytes that are not UTF-8 (which line, which column) and ragged lines are
        violations of the check ``file``, ``encoding`` or ``format``, reported like any other.
        """
        raw, problem = read_table(Path(path), self.columns)
        if problem is not None:
            return None, ValidationReport(0, [problem], self.columns, self.min_rows)
        return raw, self.validate(raw, window)

    def validate(self, raw: pd.DataFrame, window: tuple[str, str] | None = None) -> ValidationReport:
        """Check every rule on ``raw`` (and, with ``window``, that every hour falls inside it)."""
        report = ValidationReport(rows=len(raw), expected=self.columns, min_rows=self.min_rows)
        add = report.violations.append
        missing = [r.column for r in self.rules if r.column not in raw.columns]
        for column in missing:
            add(Violation(column, "present", "column is missing", len(raw)))
        unexpected = sorted(set(raw.columns) - {r.column for r in self.rules})
        for column in unexpected:
            add(Violation(column, "expected", "column is not in the contract", len(raw)))
        if len(raw) < self.min_rows:
            add(Violation("*", "min_rows", f"{len(raw)} rows, at least {self.min_rows} needed", len(raw)))
        for rule in self.rules:
            if rule.column in raw.columns:
                report.violations.extend(_check_column(raw[rule.column], rule))
        if {"day", "hr"} <= set(raw.columns) and not missing:
            report.violations.extend(self._check_time(raw, window))
        parts = [*self.target_parts, self.target]
        if set(parts) <= set(raw.columns):
            values = raw[parts].apply(pd.to_numeric, errors="coerce")
            wrong = int((values[list(self.target_parts)].sum(axis=1) != values[self.target]).sum())
            if wrong:
                add(Violation(self.target, "sum", f"{' + '.join(self.target_parts)} != {self.target}", wrong))
        return report

    def _check_time(self, raw: pd.DataFrame, window: tuple[str, str] | None) -> list[Violation]:
        day = pd.to_numeric(raw["day"], errors="coerce")
        hour = pd.to_numeric(raw["hr"], errors="coerce")
        usable = day.notna() & hour.notna()
        stamps = pd.Timestamp(f"{self.year}-01-01") + pd.to_timedelta(day[usable] - 1, unit="D")
        stamps = stamps + pd.to_timedelta(hour[usable], unit="h")
        found = []
        repeated = int(stamps.duplicated().sum())
        if repeated:
            found.append(Violation("day,hr", "unique", "the same hour appears more than once", repeated))
        if window is not None:
            start, end = pd.Timestamp(window[0]), pd.Timestamp(window[1])
            outside = int(((stamps < start) | (stamps >= end)).sum())
            if outside:
                detail = f"hours outside the window {window[0]} .. {window[1]}"
                found.append(Violation("day,hr", "window", detail, outside))
        return found


def read_table(path: Path, columns: tuple[str, ...] = ()) -> tuple[pd.DataFrame | None, Violation | None]:
    """``(frame, None)`` for a readable CSV file, else ``(None, the violation)`` saying what is wrong with the file
    (``columns``: the expected header, to name the column of a bad byte when the file has no readable header)."""
    if not path.is_file():
        return None, Violation("*", "file", f"no such file: {path}")
    raw = path.read_bytes()
    if not raw.strip():
        return None, Violation("*", "file", f"the file is empty ({len(raw)} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, _not_utf8(raw, exc, columns)
    try:
        return pd.read_csv(io.StringIO(text)), None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
        return None, Violation("*", "format", f"not a table: {detail}")


def _not_utf8(raw: bytes, exc: UnicodeDecodeError, columns: tuple[str, ...]) -> Violation:
    """Where the first byte that is not UTF-8 is (line, column); ``rows``: how many lines have one."""
    lines = raw.split(b"\n")
    bad = [i for i, line in enumerate(lines) if not _is_utf8(line)]
    line_start = raw.rfind(b"\n", 0, exc.start) + 1
    field = raw[line_start : exc.start].count(b",")
    header = lines[0].decode("utf-8", errors="replace").strip().split(",") if 0 not in bad else list(columns)
    column = f", column {header[field]!r}" if field < len(header) else ""
    looks = "Latin-1 or Windows-1252 text" if _is_latin1(raw) else "binary, not text"
    detail = f"line {bad[0] + 1}{column}: byte 0x{raw[exc.start]:02x} is not UTF-8 (the file looks {looks})"
    return Violation("*", "encoding", detail, len(bad))


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_latin1(raw: bytes) -> bool:
    return b"\x00" not in raw


def _check_column(values: pd.Series, rule: ColumnRule) -> list[Violation]:
    found = []
    nulls = values.isna()
    if nulls.any() and not rule.nullable:
        found.append(Violation(rule.column, "not_null", "missing values", int(nulls.sum())))
    present = values[~nulls]
    if rule.kind == "category":
        bad = present[~present.astype(str).isin(rule.allowed or ())]
        if len(bad):
            shown = ", ".join(sorted(map(str, bad.unique()))[:5])
            found.append(Violation(rule.column, "allowed", f"unknown values: {shown}", len(bad)))
        return found
    numbers = pd.to_numeric(present, errors="coerce")
    not_numbers = numbers.isna()
    if not_numbers.any():
        shown = ", ".join(sorted(map(str, present[not_numbers].unique()))[:5])
        found.append(Violation(rule.column, "type", f"not a number: {shown}", int(not_numbers.sum())))
    numbers = numbers[~not_numbers]
    if rule.kind == "int":
        fractional = int((numbers != numbers.round()).sum())
        if fractional:
            found.append(Violation(rule.column, "type", "not a whole number", fractional))
    if rule.minimum is not None and (low := int((numbers < rule.minimum).sum())):
        found.append(Violation(rule.column, "range", f"below {rule.minimum:g} (min {numbers.min():g})", low))
    if rule.maximum is not None and (high := int((numbers > rule.maximum).sum())):
        found.append(Violation(rule.column, "range", f"above {rule.maximum:g} (max {numbers.max():g})", high))
    return found


#: The contract for CityBikes batches in the ``Bikeshare.csv`` format: at least a week of hours.
BIKES_CONTRACT = DataContract(
    rules=(
        ColumnRule("season", "int", 1, 4),
        ColumnRule("mnth", "category", allowed=MONTHS),
        ColumnRule("day", "int", 1, 366),
        ColumnRule("hr", "int", 0, 23),
        ColumnRule("holiday", "int", 0, 1),
        ColumnRule("weekday", "int", 0, 6),
        ColumnRule("workingday", "int", 0, 1),
        ColumnRule("weathersit", "category", allowed=WEATHER),
        ColumnRule("temp", "float", 0, 1),
        ColumnRule("atemp", "float", 0, 1),
        ColumnRule("hum", "float", 0, 1),
        ColumnRule("windspeed", "float", 0, 1),
        ColumnRule("casual", "int", 0, 5000),
        ColumnRule("registered", "int", 0, 5000),
        ColumnRule("bikers", "int", 0, 5000),
    ),
    min_rows=24 * 7,
)
