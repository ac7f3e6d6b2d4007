"""Drift on the NYC flights: the course's helper against Evidently, on the same 10 columns (issue: monitoring at scale).

    .venv/bin/python benchmarks/drift.py [--sizes 10000 100000 all]

For each size n: reference = n flights of January-June, current = n flights of July-December (all = every flight of
each half). Prints wall time and peak Python memory (tracemalloc) for `monitoring.drift_table` (PSI and K-S together)
and for Evidently's `DataDriftPreset` (once with PSI, once with K-S), and the largest difference between the numbers.
Time is the best of 3 runs for the helper and of 1 run for Evidently; memory is measured in a separate run.
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc
import warnings

import pandas as pd

from mlops_helpers import data, monitoring, workspace

COLUMNS = ["dep_delay", "arr_delay", "air_time", "distance", "hour", "temp", "humid", "wind_speed", "precip", "visib"]


def measure(fn, repeat: int = 1):
    """(result, best wall seconds of ``repeat`` runs, peak MiB traced in one more run).

    Time and memory are measured in separate runs: tracemalloc slows Python allocations down several times.
    """
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        seconds.append(time.perf_counter() - started)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, min(seconds), peak / 2**20


def evidently_values(reference: pd.DataFrame, current: pd.DataFrame, **preset) -> dict[str, float]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=COLUMNS)
    ref, cur = (Dataset.from_pandas(f, data_definition=definition) for f in (reference, current))
    metrics = Report([DataDriftPreset(**preset)]).run(cur, ref).dict()["metrics"]
    return {m["config"]["column"]: float(m["value"]) for m in metrics if m["config"]["type"].endswith("ValueDrift")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["10000", "100000", "all"])
    args = parser.parse_args()
    workspace.quiet()
    warnings.filterwarnings("ignore")
    import evidently  # noqa: F401  (imported before timing: 2-3 s that are not the computation)
    import scipy.stats  # noqa: F401

    flights = data.load_flights()[["month", *COLUMNS]]
    first, second = flights[flights["month"] <= 6][COLUMNS], flights[flights["month"] > 6][COLUMNS]
    print(f"{platform.machine()}, {platform.python_version()}, flights: {len(first)} Jan-Jun, {len(second)} Jul-Dec")
    print(f"{'rows ref/cur':>14}  {'what':<30} {'seconds':>8} {'peak MiB':>9}  {'max |diff|':>10}")
    for size in args.sizes:
        if size == "all":
            reference, current = first, second
        else:
            n = int(size)
            reference, current = first.sample(n, random_state=0), second.sample(n, random_state=0)
        label = f"{len(reference)}/{len(current)}"
        ours, seconds, peak = measure(lambda r=reference, c=current: monitoring.drift_table(r, c, numeric=COLUMNS), 3)
        print(f"{label:>14}  {'helper: PSI + K-S':<30} {seconds:8.2f} {peak:9.1f}")
        for name, preset, field in (("Evidently: PSI", {"method": "psi"}, "psi"),
                                    ("Evidently: K-S", {"num_method": "ks"}, "p_value")):  # fmt: skip
            values, seconds, peak = measure(lambda r=reference, c=current, p=preset: evidently_values(r, c, **p))
            diff = max(abs(ours.loc[c, field] - values[c]) for c in COLUMNS)
            print(f"{label:>14}  {name:<30} {seconds:8.2f} {peak:9.1f}  {diff:10.2e}")


if __name__ == "__main__":
    main()
