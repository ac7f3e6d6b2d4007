"""The figures the notebooks share (introduced in notebook 00). Each returns its matplotlib ``Figure``.

End a cell with the call (no trailing semicolon) and Jupyter shows the figure once.

Only plotting lives here: the numbers a figure shows are computed in the notebook, where the learner can see them.
Figures are small (dpi 80) so committed notebooks stay light.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mlops_helpers.data import MONTHS, TRAIN_WINDOW

DPI = 80


def _figure(ncols: int = 1, width: float = 6.0, height: float = 3.2):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), dpi=DPI, layout="constrained")
    # Closed at once: the figure is shown once, as the value the cell returns, not again by the inline backend.
    plt.close(fig)
    return fig, axes


def demand_by_hour(hourly: pd.DataFrame, title: str = "Rentals by hour of day"):
    """Line per column of ``hourly`` (index: hour 0-23), e.g. mean rentals on working days and on other days."""
    fig, ax = _figure()
    for column in hourly.columns:
        ax.plot(hourly.index, hourly[column], marker="o", markersize=3, label=str(column))
    ax.set(xlabel="hour of day", ylabel="mean rentals per hour", title=title, xticks=range(0, 24, 3))
    ax.legend(frameon=False)
    return fig


def demand_by_month(monthly: pd.Series, title: str = "Mean rentals per hour, by month (2011)"):
    """Bars of ``monthly`` (index: month names), the training window (January-March) shaded."""
    fig, ax = _figure()
    months = [m for m in MONTHS if m in monthly.index]
    train_months = pd.date_range(*TRAIN_WINDOW, freq="MS", inclusive="left").month
    colors = ["tab:blue" if MONTHS.index(m) + 1 in train_months else "tab:gray" for m in months]
    ax.bar(months, monthly.loc[months], color=colors)
    ax.set(ylabel="mean rentals per hour", title=title)
    ax.tick_params(axis="x", rotation=45)
    ax.text(0.01, 0.95, "blue: training window", transform=ax.transAxes, va="top", fontsize=9)
    return fig


def demand_by_category(groups: dict[str, Sequence[float]], title: str, xlabel: str):
    """Box plots of rentals per hour for each group (e.g. each weather situation)."""
    fig, ax = _figure()
    ax.boxplot(list(groups.values()), tick_labels=list(groups.keys()), showfliers=False)
    ax.set(xlabel=xlabel, ylabel="rentals per hour", title=title)
    return fig


def compare_runs(runs: pd.DataFrame, metric: str, label: str, group: str, title: str | None = None):
    """Horizontal bars of ``metric`` per run (labelled by ``label``), coloured by ``group``, best at the top."""
    import matplotlib as mpl

    fig, ax = _figure(height=0.3 * len(runs) + 1.2)
    ordered = runs.sort_values(metric, ascending=False)
    palette = mpl.colormaps["tab10"]
    groups = sorted(ordered[group].unique())
    colors = [palette(groups.index(g)) for g in ordered[group]]
    ax.barh(ordered[label].astype(str), ordered[metric], color=colors)
    handles = [mpl.patches.Patch(color=palette(i), label=g) for i, g in enumerate(groups)]
    ax.legend(handles=handles, frameon=False, loc="upper right")
    ax.set(xlabel=metric, title=title or f"{metric} by run (lower is better)")
    return fig


def weekly_series(
    series: dict[str, pd.Series],
    ylabel: str,
    title: str,
    threshold: float | None = None,
    marks: dict[str, str] | None = None,
):
    """One line per named weekly series (index: week start), an optional dashed threshold and labelled vertical marks.

    Used by notebooks 06 (drift and error over time) and 07 (error with and without retraining).
    """
    fig, ax = _figure(width=8)
    for name, values in series.items():
        ax.plot(values.index, values.to_numpy(), marker="o", markersize=3, label=name)
    if threshold is not None:
        ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    for label, when in (marks or {}).items():
        ax.axvline(pd.Timestamp(when), color="gray", linestyle=":", linewidth=1)
        ax.text(pd.Timestamp(when), ax.get_ylim()[1], f" {label}", va="top", fontsize=8, color="gray")
    ax.set(ylabel=ylabel, title=title)
    ax.legend(frameon=False, fontsize=8)
    fig.autofmt_xdate()
    return fig


def lineage_graph(graph, title: str | None = None):
    """A lineage graph (``governance.lineage.Lineage``, notebook 10): one column per kind, upstream on the left."""
    import matplotlib.pyplot as plt

    from mlops_helpers.governance.lineage import KINDS, node_order

    kinds = [k for k in KINDS if any(n.kind == k for n in graph.nodes.values())]
    columns = {k: sorted((n for n in graph.nodes.values() if n.kind == k), key=node_order) for k in kinds}
    height = max(len(c) for c in columns.values()) if columns else 1
    fig, ax = plt.subplots(figsize=(2.0 * max(len(kinds), 1), 1.0 * height + 1.0), dpi=80, layout="constrained")
    plt.close(fig)  # shown once, as the value the cell returns
    where = {}
    for x, kind in enumerate(kinds):
        column = columns[kind]
        for i, node in enumerate(column):
            where[node.id] = (x, (height - 1) / 2 - i + (len(column) - 1) / 2)
    for edge in graph.edges:
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        past = edge.relation.endswith("before")  # an alias that pointed here once: dashed
        arrow = {"arrowstyle": "->", "color": "0.55", "lw": 0.8, "linestyle": "--" if past else "-"}
        ax.annotate("", xy=(x1 - 0.4, y1), xytext=(x0 + 0.4, y0), arrowprops=arrow)
        ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.08, edge.relation, ha="center", va="bottom", fontsize=6, color="0.4")
    colors = dict(zip(KINDS, plt.get_cmap("tab10").colors, strict=False))
    for node_id, (x, y) in where.items():
        node = graph.nodes[node_id]
        ax.text(
            x, y, _wrap(node.label), ha="center", va="center", fontsize=7,
            bbox={"boxstyle": "round,pad=0.3", "facecolor": colors[node.kind], "alpha": 0.25, "edgecolor": "0.4"},
        )  # fmt: skip
    for x, kind in enumerate(kinds):
        ax.text(x, height - 0.35, kind, ha="center", va="bottom", fontsize=8, fontweight="bold")
    ax.set(xlim=(-0.6, len(kinds) - 0.4), ylim=(-0.7, height), title=title or f"Lineage of {graph.model_name}")
    ax.axis("off")
    return fig


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])
