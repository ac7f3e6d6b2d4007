"""The datasets: checksums, dtypes, the leak removed, time windows."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from mlops_helpers import data


@pytest.fixture(scope="module")
def bikes() -> pd.DataFrame:
    return data.load_bikes()


def test_bikes_shape_index_and_dtypes(bikes):
    assert bikes.shape == (8645, 15)
    assert isinstance(bikes.index, pd.DatetimeIndex)
    assert bikes.index.is_monotonic_increasing and bikes.index.is_unique
    assert bikes.index[0] == pd.Timestamp("2011-01-01 00:00") and bikes.index[-1] == pd.Timestamp("2011-12-31 23:00")
    assert bikes["month_name"].dtype == "category" and bikes["month_name"].cat.ordered
    assert list(bikes["weathersit"].cat.categories) == list(data.WEATHER)
    for column in ("hr", "month", "weather", "weekday", "workingday", "holiday", "bikers"):
        assert bikes[column].dtype == "int64", column


def test_timestamp_agrees_with_calendar_columns(bikes):
    assert (bikes.index.hour == bikes["hr"]).all()
    assert (bikes.index.month == bikes["month"]).all()
    assert (bikes.index.dayofyear == bikes["day"]).all()
    # weekday in the source counts from Sunday = 0; pandas from Monday = 0
    assert ((bikes.index.dayofweek + 1) % 7 == bikes["weekday"]).all()


def test_leaky_columns_are_removed(bikes):
    raw = pd.read_csv(data.DATA_DIR / data.BIKES_FILE)
    assert (raw["casual"] + raw["registered"] == raw["bikers"]).all()
    assert not set(data.LEAKY_COLUMNS) & set(bikes.columns)
    assert not set(data.LEAKY_COLUMNS) & set(data.FEATURES)


def test_windows_are_half_open_and_cover_the_year(bikes):
    train, production = data.window(bikes, *data.TRAIN_WINDOW), data.window(bikes, "2011-04-01", "2012-01-01")
    assert len(train) + len(production) == len(bikes)
    assert train.index.max() < production.index.min()
    assert set(train["month"]) == {1, 2, 3}
    assert len(data.window(bikes, "2011-01-01 00:00", "2011-01-01 01:00")) == 1
    counts = [len(data.window(bikes, start, end)) for _, start, end in data.monthly_windows()]
    assert sum(counts) == len(bikes) and len(counts) == 12


def test_window_rejects_reversed_bounds(bikes):
    with pytest.raises(ValueError, match="before its end"):
        data.window(bikes, "2011-04-01", "2011-01-01")


def test_a_window_is_parsed_once_with_a_clear_error():
    window = data.Window.parse("2011-01-01:2011-06-01")
    assert window == ("2011-01-01", "2011-06-01") and str(window) == "2011-01-01:2011-06-01"
    assert data.Window.parse(window) == window and data.Window.parse(("2011-01-01", "2011-06-01")) == window
    for bad, message in (("2011-01-01", "START:END"), ("2011-06-01:2011-01-01", "before its end"),
                         ("2011-01-01:June", "window")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            data.Window.parse(bad)


def test_train_validation_split_is_by_time(bikes):
    train = data.window(bikes, *data.TRAIN_WINDOW)
    fit, valid = data.train_validation_split(train, "2011-03-01")
    assert fit.index.max() < pd.Timestamp("2011-03-01") <= valid.index.min()
    with pytest.raises(ValueError, match="empty side"):
        data.train_validation_split(train, "2012-01-01")


def test_xy_gives_float_features_and_target(bikes):
    X, y = data.xy(bikes)
    assert list(X.columns) == list(data.FEATURES)
    assert (X.dtypes == "float64").all() and y.name == data.TARGET


def _copy_data(tmp_path):
    target = tmp_path / "data"
    shutil.copytree(data.DATA_DIR, target, ignore=shutil.ignore_patterns("flights.csv.zip"))
    return target


def test_altered_file_is_refused_with_what_to_do(tmp_path):
    folder = _copy_data(tmp_path)
    with open(folder / data.BIKES_FILE, "a") as handle:
        handle.write('1,"Dec",365,"23",0,6,0,"clear",0.2,0.2,0.5,0.1,1,1,2\n')
    with pytest.raises(data.DataError, match=r"altered.*git checkout -- data/Bikeshare.csv"):
        data.load_bikes(folder)


def test_missing_file_is_a_clear_error(tmp_path):
    folder = _copy_data(tmp_path)
    (folder / data.BIKES_FILE).unlink()
    with pytest.raises(data.DataError, match=r"missing.*nothing is downloaded"):
        data.load_bikes(folder)


def test_checksums_file_matches_the_shipped_data():
    expected = data.expected_checksums()
    assert set(expected) == {data.BIKES_FILE, data.FLIGHTS_FILE, data.WEATHER_FILE}
    for name, digest in expected.items():
        assert data.sha256(data.DATA_DIR / name) == digest, name


def test_flights_with_weather():
    flights = data.load_flights()
    assert len(flights) == 336_776
    assert set(flights["origin"].cat.categories) == {"EWR", "JFK", "LGA"}
    assert flights["late"].isna().sum() == flights["dep_delay"].isna().sum()
    assert flights["temp"].notna().mean() > 0.99  # nearly every scheduled hour has its weather
    late = flights["late"].dropna()
    assert 0.15 < late.mean() < 0.3


def test_source_batch_is_the_raw_rows_of_a_window(bikes):
    batch = data.source_batch("2011-06-01:2011-07-01")
    assert set(data.LEAKY_COLUMNS) <= set(batch.columns)  # the source format, untouched
    typed = data.prepare_bikes(batch)
    assert typed.index.equals(data.window(bikes, "2011-06-01", "2011-07-01").index)
    assert len(data.source_batch(data.Window("2011-12-01", "2012-01-01"))) == len(
        data.window(bikes, "2011-12-01", "2012-01-01")
    )
    with pytest.raises(ValueError, match="within one year"):
        data.source_batch("2011-12-01:2012-02-01")
