"""The course's datasets: loading with proper dtypes, checksums, and time windows (introduced in notebook 00).

CityBikes (UCI Bike Sharing, Washington DC, 2011) is the story: one row per hour, target ``bikers``. The model is
trained on January-March and then meets the rest of the year ("production"). The columns ``casual`` and
``registered`` sum to the target, so they are dropped on load: a model that sees them predicts perfectly and learns
nothing.

The NYC flights of 2013 (with the hourly weather at the three airports) serve the exercises and the scale benchmarks.
Every file is checked against ``data/CHECKSUMS.sha256`` before it is read; nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from mlops_helpers import REPO_ROOT

DATA_DIR = REPO_ROOT / "data"
CHECKSUMS = DATA_DIR / "CHECKSUMS.sha256"

BIKES_FILE = "Bikeshare.csv"
FLIGHTS_FILE = "flights.csv.zip"
WEATHER_FILE = "weather.csv"

TARGET = "bikers"
#: Removed on load: they sum to the target (a leak).
LEAKY_COLUMNS = ("casual", "registered")
MONTHS = ("Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct", "Nov", "Dec")
WEATHER = ("clear", "cloudy/misty", "light rain/snow", "heavy rain/snow")
NUMERIC_FEATURES = ("temp", "atemp", "hum", "windspeed")
CALENDAR_FEATURES = ("hr", "weekday", "workingday", "holiday", "season", "month")
#: The model's inputs, all numeric (the weather category as its ordinal code, 0 = clear ... 3 = heavy rain/snow).
FEATURES = (*CALENDAR_FEATURES, "weather", *NUMERIC_FEATURES)


class Window(NamedTuple):
    """A half-open time window ``start <= hour < end`` (ISO dates), written ``START:END`` on a command line."""

    start: str
    end: str

    @classmethod
    def parse(cls, text: str | tuple[str, str] | Window) -> Window:
        """``"2011-01-01:2011-06-01"`` (or a pair) as a checked window; a ``ValueError`` says what is wrong."""
        if isinstance(text, tuple):
            start, end = text
        else:
            start, sep, end = str(text).partition(":")
            if not sep or not start or not end:
                raise ValueError(f"a window is START:END, e.g. 2011-01-01:2011-06-01, not {text!r}")
        try:
            first, last = pd.Timestamp(start), pd.Timestamp(end)
        except ValueError as exc:
            raise ValueError(f"window {text!r}: {exc}") from None
        if first >= last:
            raise ValueError(f"window start {start} must be before its end {end}")
        return cls(str(start), str(end))

    def __str__(self) -> str:
        return f"{self.start}:{self.end}"


#: Notebook 01's training window (January-March), and where its validation part starts (March).
TRAIN_WINDOW = Window("2011-01-01", "2011-04-01")
VALIDATION_START = "2011-03-01"


class DataError(RuntimeError):
    """A dataset file is missing, altered, or does not have the expected shape. The message says what to do."""


def sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expected_checksums(checksums: str | Path = CHECKSUMS) -> dict[str, str]:
    """File name -> expected SHA-256, from a ``sha256sum``-format file (``sha256sum -c`` checks it too)."""
    result = {}
    for line in Path(checksums).read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            result[name.lstrip("*")] = digest
    return result


def verified_path(name: str, data_dir: str | Path | None = None) -> Path:
    """The path of dataset file ``name`` after checking it exists and matches its recorded checksum.

    Raises :class:`DataError` with what to do when the file is missing or its content differs.
    """
    folder = Path(data_dir) if data_dir else DATA_DIR
    path = folder / name
    if not path.is_file():
        raise DataError(
            f"Dataset file {path} is missing. The course ships its data in the repository's data/ folder: "
            f"restore it with `git checkout -- data/{name}` (nothing is downloaded at run time)."
        )
    checksums = folder / CHECKSUMS.name
    expected = expected_checksums(checksums if checksums.exists() else CHECKSUMS).get(name)
    if expected is None:
        raise DataError(f"No checksum recorded for {name} in {checksums}: add its `sha256sum` line there.")
    actual = sha256(path)
    if actual != expected:
        raise DataError(
            f"Dataset file {path} has been altered: sha256 {actual[:12]}... but {expected[:12]}... is recorded in "
            f"{checksums.name}. Restore the original with `git checkout -- data/{name}`, or, if the change is "
            f"intended, record the new checksum with `sha256sum {name} > ...` and say so in data/README.md."
        )
    return path


def load_bikes(data_dir: str | Path | None = None) -> pd.DataFrame:
    """CityBikes 2011, one row per hour, indexed by a real timestamp, with proper dtypes and no leaky columns.

    Columns: ``season`` (1-4), ``month`` (1-12), ``month_name`` (ordered category), ``day`` (day of year, 1-365),
    ``hr`` (0-23), ``holiday``, ``weekday`` (0 = Sunday), ``workingday``, ``weathersit`` (ordered category),
    ``weather`` (its code 0-3), ``temp``, ``atemp``, ``hum``, ``windspeed`` (normalised to 0-1 as published), and the
    target ``bikers`` (rentals in that hour). 8,645 rows: 115 hours of the year are missing from the source.
    """
    path = verified_path(BIKES_FILE, data_dir)
    return prepare_bikes(pd.read_csv(path), source=str(path))


def prepare_bikes(raw: pd.DataFrame, source: str = "the data") -> pd.DataFrame:
    """Type a raw frame in the ``Bikeshare.csv`` format: timestamp index, categories, codes, leak removed."""
    path = source
    expected = {"mnth", "day", "hr", "weathersit", *NUMERIC_FEATURES, TARGET, *LEAKY_COLUMNS}
    missing = expected - set(raw.columns)
    if missing:
        raise DataError(f"{path} lacks the columns {sorted(missing)}: is it the course's Bikeshare.csv?")
    unknown_months = set(raw["mnth"]) - set(MONTHS)
    unknown_weather = set(raw["weathersit"]) - set(WEATHER)
    if unknown_months or unknown_weather:
        raise DataError(f"{path} has unknown months {unknown_months or '{}'} or weather {unknown_weather or '{}'}.")

    frame = raw.drop(columns=list(LEAKY_COLUMNS))
    frame["hr"] = frame["hr"].astype("int64")
    frame["timestamp"] = (
        pd.Timestamp("2011-01-01")
        + pd.to_timedelta(frame["day"] - 1, unit="D")
        + pd.to_timedelta(frame["hr"], unit="h")
    )
    frame["month_name"] = pd.Categorical(frame.pop("mnth"), categories=list(MONTHS), ordered=True)
    frame["month"] = (frame["month_name"].cat.codes + 1).astype("int64")
    frame["weathersit"] = pd.Categorical(frame["weathersit"], categories=list(WEATHER), ordered=True)
    frame["weather"] = frame["weathersit"].cat.codes.astype("int64")
    for column in ("holiday", "workingday"):
        frame[column] = frame[column].astype("int64")
    frame = frame.set_index("timestamp").sort_index()
    if not frame.index.is_unique:
        raise DataError(f"{path} has repeated hours: each (day, hr) must appear once.")
    order = [
        "season",
        "month",
        "month_name",
        "day",
        "hr",
        "holiday",
        "weekday",
        "workingday",
        "weathersit",
        "weather",
        *NUMERIC_FEATURES,
        TARGET,
    ]
    return frame[order]


def window(frame: pd.DataFrame, start: str, end: str) -> pd.DataFrame:
    """The rows with ``start <= timestamp < end`` (half-open, so consecutive windows never share an hour)."""
    start, end = Window.parse((start, end))
    return frame.loc[(frame.index >= pd.Timestamp(start)) & (frame.index < pd.Timestamp(end))]


def source_batch(span: Window | str | tuple[str, str], data_dir: str | Path | None = None) -> pd.DataFrame:
    """The rows of ``Bikeshare.csv`` in ``span`` (a :class:`Window` or ``"START:END"``), untouched, in the source
    format (columns as published): a batch "as the source system delivers it", for the pipeline (notebooks 05, 07)."""
    start, end = Window.parse(span)
    raw = pd.read_csv(verified_path(BIKES_FILE, data_dir))
    first, last = pd.Timestamp(start), pd.Timestamp(end)
    if first.year != last.year and last != pd.Timestamp(f"{first.year + 1}-01-01"):
        raise ValueError(f"a batch lies within one year of data, not {start} to {end}")
    day_end = last.dayofyear if last.year == first.year else 367
    return raw[(raw["day"] >= first.dayofyear) & (raw["day"] < day_end)]


def train_validation_split(frame: pd.DataFrame, validation_start: str = VALIDATION_START) -> tuple[pd.DataFrame, ...]:
    """Split a training window by time: everything before ``validation_start`` to fit, the rest to validate.

    Time order, never a random shuffle: a random split would let the model peek at the hours around each
    validation hour and flatter its score.
    """
    cut = pd.Timestamp(validation_start)
    fit, valid = frame.loc[frame.index < cut], frame.loc[frame.index >= cut]
    if fit.empty or valid.empty:
        raise ValueError(f"validation_start {validation_start} leaves an empty side: pick a date inside the window")
    return fit, valid


def xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The model's inputs (:data:`FEATURES`, as float64, so the MLflow signature declares doubles) and the target."""
    return frame[list(FEATURES)].astype("float64"), frame[TARGET].astype("float64")


def monthly_windows(year: int = 2011) -> list[tuple[str, str, str]]:
    """``(label, start, end)`` for each month of ``year``, for replaying the production months one at a time."""
    starts = pd.date_range(f"{year}-01-01", periods=13, freq="MS")
    return [(s.strftime("%b"), s.strftime("%Y-%m-%d"), e.strftime("%Y-%m-%d")) for s, e in itertools.pairwise(starts)]


def load_flights(with_weather: bool = True, data_dir: str | Path | None = None) -> pd.DataFrame:
    """NYC flights departing JFK, LGA and EWR in 2013 (336,776 rows), optionally joined with the hourly weather.

    Adds ``scheduled`` (local departure hour as a timestamp) and ``late`` (departure delay over 15 minutes; missing
    for cancelled flights). The weather is joined on origin and scheduled hour (left join: a few hours have none).
    """
    flights = pd.read_csv(verified_path(FLIGHTS_FILE, data_dir))
    flights["scheduled"] = pd.to_datetime(flights[["year", "month", "day", "hour"]])
    flights["late"] = (flights["dep_delay"] > 15).astype("Int64").mask(flights["dep_delay"].isna())
    for column in ("carrier", "origin", "dest", "tailnum"):
        flights[column] = flights[column].astype("category")
    flights = flights.drop(columns=["time_hour"])
    if not with_weather:
        return flights
    weather = pd.read_csv(verified_path(WEATHER_FILE, data_dir), na_values=["NA"])
    weather["scheduled"] = pd.to_datetime(weather[["year", "month", "day", "hour"]])
    weather = weather.drop(columns=["year", "month", "day", "hour", "time_hour"])
    weather = weather.drop_duplicates(["origin", "scheduled"])
    weather["origin"] = weather["origin"].astype(flights["origin"].dtype)
    return flights.merge(weather, on=["origin", "scheduled"], how="left", validate="many_to_one")
