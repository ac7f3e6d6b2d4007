"""The data contract: what a batch of CityBikes data must satisfy before anything is trained on it (notebook 05).

The contract is checked on the data as the source system delivers it (the ``Bikeshare.csv`` format), before any
parsing, so that a broken batch is described completely (every violation, with how many rows) instead of failing on
the first bad value. The pipeline refuses a batch with any violation; nothing is trained or registered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

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


@dataclass
class ValidationReport:
    """The outcome of checking one batch against a contract."""

    rows: int
    violations: list[Violation] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    def to_frame(self) -> pd.DataFrame:
        """The violations as a table (empty when the batch passed)."""
        return pd.DataFrame([asdict(v) for v in self.violations], columns=["column", "check", "detail", "rows"])

    def to_dict(self) -> dict:
        return {"ok": self.ok, "rows": self.rows, "violations": [asdict(v) for v in self.violations]}

    def verdict(self) -> str:
        """One line: passed, or how many violations in which columns."""
        if self.ok:
            return f"data contract: passed ({self.rows} rows)"
        columns = sorted({v.column for v in self.violations})
        return f"data contract: REFUSED, {len(self.violations)} violation(s) in {', '.join(columns)}"


@dataclass(frozen=True)
class DataContract:
    """Columns and their rules, a minimum row count, and the calendar year the day-of-year column counts in."""

    rules: tuple[ColumnRule, ...]
    min_rows: int
    year: int = 2011
    target_parts: tuple[str, ...] = ("casual", "registered")
    target: str = "bikers"

    def validate(self, raw: pd.DataFrame, window: tuple[str, str] | None = None) -> ValidationReport:
        """Check every rule on ``raw`` (and, with ``window``, that every hour falls inside it)."""
        report = ValidationReport(rows=len(raw))
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
