"""The figures the notebooks share (introduced in notebook 00). Each returns its matplotlib ``Figure``.

End a cell with the call (no trailing semicolon) and Jupyter shows the figure once.

Only plotting lives here: the numbers a figure shows are computed in the notebook, where the learner can see them.
Figures are small (dpi 80) so committed notebooks stay light.
"""

from __future__ import annotations

from collections import Counter
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


#: The lineage drawing's geometry, in data units (one column or row per unit): box size, and the gap between the
#: alias and the deployment blocks that share the last column.
BOX_WIDTH, BOX_HEIGHT, BLOCK_GAP = 0.56, 0.78, 0.3
#: Columns of the lineage drawing, upstream first: aliases and deployments share the last one (both hang off a
#: version, and in columns of their own the edges to one would cross the other).
LINEAGE_COLUMNS = (
    ("data file",),
    ("data version",),
    ("dataset",),
    ("run",),
    ("logged model",),
    ("version",),
    ("alias", "deployment"),
)


def lineage_layout(graph) -> dict[str, tuple[float, float]]:
    """Where :func:`lineage_graph` puts each node: ``{node id: (x, y)}``, the box centres in data units.

    One column per entry of :data:`LINEAGE_COLUMNS` (the ones with nodes), nodes in ``node_order`` from the top, each
    column centred on the tallest one.
    """
    from mlops_helpers.governance.lineage import node_order

    nodes = sorted(graph.nodes.values(), key=node_order)
    columns = [[[n for n in nodes if n.kind == kind] for kind in kinds] for kinds in LINEAGE_COLUMNS]
    columns = [[block for block in column if block] for column in columns]
    columns = [column for column in columns if column]
    heights = [sum(len(block) for block in column) + BLOCK_GAP * (len(column) - 1) for column in columns]
    top = max(heights, default=1.0)
    where = {}
    for x, (column, height) in enumerate(zip(columns, heights, strict=True)):
        y = top - (top - height) / 2 - 0.5
        for block in column:
            for node in block:
                where[node.id] = (float(x), y)
                y -= 1.0
            y -= BLOCK_GAP
    return where


def lineage_graph(graph, title: str | None = None):
    """A lineage graph (``governance.lineage.Lineage``, notebook 10): one column per kind, upstream on the left.

    Every node is a box of the same size (its label wrapped to fit), coloured by kind; every edge an arrow from the
    right side of its source's box to the left side of its target's, labelled with the relation. An alias that
    pointed at a version once but not now is dashed.
    """
    import matplotlib.pyplot as plt

    from mlops_helpers.governance.lineage import KINDS

    where = lineage_layout(graph)
    ncols = 1 + int(max((x for x, _ in where.values()), default=0))
    nrows = max((y for _, y in where.values()), default=0.0) + 1.0
    fig, ax = plt.subplots(figsize=(2.1 * ncols, 0.85 * nrows + 0.6), dpi=DPI, layout="constrained")
    plt.close(fig)  # shown once, as the value the cell returns
    fan_out = Counter(edge.source for edge in graph.edges)
    fan_in = Counter(edge.target for edge in graph.edges)
    for edge in graph.edges:
        # the label where the arrows of a fan are furthest apart: near the targets of a fan-out, near the sources of
        # a fan-in
        at = 0.62 if fan_out[edge.source] > 1 else 0.38 if fan_in[edge.target] > 1 else 0.5
        _lineage_edge(ax, where[edge.source], where[edge.target], edge.relation, at)
    # the kinds in the order they were added to the course, so a new kind never changes the others' colours
    kinds = sorted(KINDS, key=lambda kind: kind == "data version")
    colours = dict(zip(kinds, plt.get_cmap("tab10").colors, strict=False))
    for node_id, (x, y) in where.items():
        node = graph.nodes[node_id]
        _lineage_box(ax, x, y, node.label, colours[node.kind])
    headers: dict[tuple[float, str], float] = {}
    for node_id, (x, y) in where.items():
        key = (x, graph.nodes[node_id].kind)
        headers[key] = max(headers.get(key, y), y)
    for (x, kind), y in headers.items():
        ax.text(x, y + BOX_HEIGHT / 2 + 0.08, kind, ha="center", va="bottom", fontsize=11, fontweight="bold")
    bottom = min((y for _, y in where.values()), default=0.0) - BOX_HEIGHT / 2 - 0.05
    ax.set(xlim=(-0.5, ncols - 0.5), ylim=(bottom, nrows - 0.1), title=title or f"Lineage of {graph.model_name}")
    ax.axis("off")
    return fig


def _lineage_box(ax, x: float, y: float, label: str, colour) -> None:
    from matplotlib.patches import FancyBboxPatch

    corner = (x - BOX_WIDTH / 2, y - BOX_HEIGHT / 2)
    box = FancyBboxPatch(corner, BOX_WIDTH, BOX_HEIGHT, boxstyle="round,pad=0,rounding_size=0.06",
                         facecolor=colour, alpha=0.3, edgecolor="0.35", linewidth=1.0)  # fmt: skip
    ax.add_patch(box)
    ax.text(x, y, _wrap(label, 15, 4), ha="center", va="center", fontsize=10)


def _lineage_edge(ax, source: tuple[float, float], target: tuple[float, float], relation: str, at: float) -> None:
    """An arrow from the right side of the source box to the left side of the target box, labelled at ``at`` of its
    length."""
    (x0, y0), (x1, y1) = source, target
    start, end = (x0 + BOX_WIDTH / 2, y0), (x1 - BOX_WIDTH / 2, y1)
    style = "--" if relation.endswith("before") else "-"
    ax.annotate("", xy=end, xytext=start, arrowprops={"arrowstyle": "-|>", "color": "0.35", "lw": 1.0,
                "linestyle": style, "shrinkA": 0, "shrinkB": 0, "mutation_scale": 12})  # fmt: skip
    where = (start[0] + at * (end[0] - start[0]), start[1] + at * (end[1] - start[1]))
    ax.text(*where, relation, ha="center", va="center", fontsize=8, color="0.25",
            bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})  # fmt: skip


def _wrap(text: str, width: int, max_lines: int) -> str:
    """``text`` on at most ``max_lines`` lines of ``width`` characters, broken after hyphens and underscores first."""
    import re
    import textwrap

    lines = textwrap.wrap(re.sub(r"_(?=\w)", "_ ", text), width, max_lines=max_lines, placeholder="…")
    return "\n".join(line.replace("_ ", "_") for line in lines)
