"""Governance: lineage, the audit trail of alias moves, model cards and reproducibility checks (notebook 10).

Four questions an auditor asks about a model in production, each answered from what the course already records:

- **Where did it come from?** :func:`lineage` follows a registered version back to its run, the MLflow dataset inputs
  of that run and the data files they were read from (checked by SHA-256), and forward to its aliases (now and in the
  audit trail) and to the services that answered with it (the prediction logs).
- **Who moved it, when and why?** :func:`audit_trail` reads the append-only trail that the pipeline's ``move_alias``
  writes (registered-model tags ``audit.NNNNN``); :func:`check_audit` replays it and compares the result with the
  registry, so an alias moved around the tools (a direct ``set_registered_model_alias``) is found.
- **What is it for, and how good is it?** :func:`model_card` writes a markdown card from the registry, the run and the
  data: intended use, training data, metrics (the logged ones and the error month by month after training, computed
  from the data), drift, limits, owners.
- **Can we build it again?** :func:`reproduce` retrains a pipeline version from its logged parameters on the data it
  logged, after checking that the data file is unchanged, and compares predictions with the registered model.

Command line (a nightly CI job runs ``audit``; it exits 1 when an alias was moved around the tools)::

    python -m mlops_helpers.governance audit [--model-name NAME] [--since N] [--strict]
    python -m mlops_helpers.governance lineage|card|reproduce [--version champion]

mlflow and pandas are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers import data as course_data
from mlops_helpers import serving  # cheap: the service's heavy imports happen inside create_app

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

#: The kinds of node, upstream first: the columns of the lineage drawing.
KINDS = ("data file", "dataset", "run", "logged model", "version", "alias", "deployment")
#: The run tag holding the SHA-256 of the file the pipeline trained on (set by ``pipeline.run_pipeline``).
DATA_SHA_TAG = "pipeline.data_sha256"
#: Registered-model (or version) tags the model card reads; the version's tag wins over the model's.
OWNER_TAG, INTENDED_USE_TAG, LIMITS_TAG = "owner", "card.intended_use", "card.limits"
#: Where prediction logs live in the workspace: the services' logs and the pipeline's integration tests.
DEPLOYMENT_LOGS = ("predictions/**/*.jsonl", "pipeline/integration-v*.jsonl")


class DataChanged(course_data.DataError):
    """The data a version was trained on is no longer what was logged: it cannot be reproduced from it."""


# --------------------------------------------------------------------------------------------------------- lineage
@dataclass(frozen=True)
class Node:
    """One thing in the lineage graph. ``id`` is ``<kind prefix>:<key>``; ``attrs`` holds the facts about it."""

    id: str
    kind: str
    label: str
    attrs: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Edge:
    """``source`` -> ``target``, upstream to downstream (data flows along the edges)."""

    source: str
    target: str
    relation: str


@dataclass
class Lineage:
    """A lineage graph: nodes by id and the edges between them, upstream to downstream."""

    model_name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    edges: list[Edge] = field(default_factory=list)

    # -- building
    def add(self, node: Node) -> Node:
        """Add ``node`` (a node with the same id is kept: the first one wins) and return the one in the graph."""
        return self.nodes.setdefault(node.id, node)

    def link(self, source: str, target: str, relation: str) -> None:
        edge = Edge(source, target, relation)
        if edge not in self.edges:
            self.edges.append(edge)

    # -- querying
    def node(self, key: str | Node) -> Node:
        """The node with id ``key`` (or ``key`` itself); a KeyError names the ids that exist."""
        if isinstance(key, Node):
            return key
        if key not in self.nodes:
            raise KeyError(f"no node {key!r} in the lineage of {self.model_name}: ids are {sorted(self.nodes)}")
        return self.nodes[key]

    def find(self, kind: str, **attrs: Any) -> list[Node]:
        """The nodes of ``kind`` whose attributes equal every ``attrs`` given, in a stable order."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(KINDS)}")
        found = [
            n for n in self.nodes.values() if n.kind == kind and all(n.attrs.get(k) == v for k, v in attrs.items())
        ]
        return sorted(found, key=_node_order)

    def parents(self, key: str | Node) -> list[Node]:
        node = self.node(key)
        return sorted((self.nodes[e.source] for e in self.edges if e.target == node.id), key=_node_order)

    def children(self, key: str | Node) -> list[Node]:
        node = self.node(key)
        return sorted((self.nodes[e.target] for e in self.edges if e.source == node.id), key=_node_order)

    def _walk(self, key: str | Node, step) -> list[Node]:
        seen: dict[str, Node] = {}
        todo = [self.node(key)]
        while todo:
            for nxt in step(todo.pop()):
                if nxt.id not in seen:
                    seen[nxt.id] = nxt
                    todo.append(nxt)
        return sorted(seen.values(), key=_node_order)

    def upstream(self, key: str | Node) -> list[Node]:
        """Everything ``key`` was made from, transitively (a deployment -> version -> ... -> data file)."""
        return self._walk(key, self.parents)

    def downstream(self, key: str | Node) -> list[Node]:
        """Everything made from ``key``, transitively (a data file -> datasets -> runs -> ... -> deployments)."""
        return self._walk(key, self.children)

    def table(self) -> pd.DataFrame:
        """One row per node, upstream first: kind, label, and the facts that identify it."""
        import pandas as pd

        rows = [
            {"kind": n.kind, "label": n.label, "facts": _facts(n)} for n in sorted(self.nodes.values(), key=_node_order)
        ]
        return pd.DataFrame(rows, columns=["kind", "label", "facts"])

    def edge_table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [
            {"from": self.nodes[e.source].label, "relation": e.relation, "to": self.nodes[e.target].label}
            for e in sorted(
                self.edges, key=lambda e: (_node_order(self.nodes[e.source]), _node_order(self.nodes[e.target]))
            )
        ]
        return pd.DataFrame(rows, columns=["from", "relation", "to"])

    # -- drawing
    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (GitHub, GitLab and JupyterLab render it in markdown)."""
        ids = {node.id: f"n{i}" for i, node in enumerate(sorted(self.nodes.values(), key=_node_order))}
        lines = ["flowchart LR"]
        for node in sorted(self.nodes.values(), key=_node_order):
            text = f"{node.kind}<br/>{node.label}".replace('"', "'")
            lines.append(f'    {ids[node.id]}["{text}"]')
        for edge in self.edges:
            lines.append(f"    {ids[edge.source]} -->|{edge.relation}| {ids[edge.target]}")
        return "\n".join(lines)

    def draw(self, title: str | None = None):
        """A matplotlib figure of the graph: one column per kind, upstream on the left. Returns the ``Figure``."""
        import matplotlib.pyplot as plt

        kinds = [k for k in KINDS if any(n.kind == k for n in self.nodes.values())]
        columns = {k: sorted((n for n in self.nodes.values() if n.kind == k), key=_node_order) for k in kinds}
        height = max(len(c) for c in columns.values()) if columns else 1
        fig, ax = plt.subplots(figsize=(2.0 * max(len(kinds), 1), 1.0 * height + 1.0), dpi=80, layout="constrained")
        plt.close(fig)  # shown once, as the value the cell returns
        where = {}
        for x, kind in enumerate(kinds):
            column = columns[kind]
            for i, node in enumerate(column):
                where[node.id] = (x, (height - 1) / 2 - i + (len(column) - 1) / 2)
        for edge in self.edges:
            (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
            past = edge.relation.endswith("before")  # an alias that pointed here once: dashed
            arrow = {"arrowstyle": "->", "color": "0.55", "lw": 0.8, "linestyle": "--" if past else "-"}
            ax.annotate("", xy=(x1 - 0.4, y1), xytext=(x0 + 0.4, y0), arrowprops=arrow)
            ax.text(
                (x0 + x1) / 2, (y0 + y1) / 2 + 0.08, edge.relation, ha="center", va="bottom", fontsize=6, color="0.4"
            )
        colors = dict(zip(KINDS, plt.get_cmap("tab10").colors, strict=False))
        for node_id, (x, y) in where.items():
            node = self.nodes[node_id]
            ax.text(
                x, y, _wrap(node.label), ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.3", "facecolor": colors[node.kind], "alpha": 0.25, "edgecolor": "0.4"},
            )  # fmt: skip
        for x, kind in enumerate(kinds):
            ax.text(x, height - 0.35, kind, ha="center", va="bottom", fontsize=8, fontweight="bold")
        ax.set(xlim=(-0.6, len(kinds) - 0.4), ylim=(-0.7, height), title=title or f"Lineage of {self.model_name}")
        ax.axis("off")
        return fig


def _node_order(node: Node) -> tuple:
    key = node.attrs.get("order", node.label)
    return (KINDS.index(node.kind), str(type(key)), key, node.id)


def _wrap(text: str, width: int = 18) -> str:
    words, lines, line = text.split(), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


def _facts(node: Node) -> str:
    a = node.attrs
    if node.kind == "data file":
        recorded = a.get("recorded_sha256")
        if not a.get("exists"):
            state = "the file is gone"
        elif recorded is None:
            state = "no SHA-256 recorded at training"
        else:
            state = "matches the record" if a.get("verified") else "CHANGED since training"
        return f"sha256 {str(a.get('sha256'))[:12]}, {state}"
    if node.kind == "dataset":
        return f"mlflow digest {a['digest']}, {a.get('rows')} rows, context {'/'.join(a.get('contexts', []))}"
    if node.kind == "run":
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in sorted(a.get("metrics", {}).items()))
        return f"{a.get('family', '?')}; {metrics}"
    if node.kind == "logged model":
        return f"logged by run {a.get('run_name')}"
    if node.kind == "version":
        return f"registered from {a.get('source')}"
    if node.kind == "alias":
        now = f"now on version {a['now']}" if a.get("now") else "on no version now"
        return f"{now}; {len(a.get('events', []))} recorded moves"
    if node.kind == "deployment":
        return f"{a['rows']} predictions, version {a['version']}" + (
            f", variant {a['variant']}" if a.get("variant") else ""
        )
    return ""


def dataset_path(dataset) -> Path | None:
    """The local file an MLflow dataset input was read from (its ``source`` JSON holds the URI), or None."""
    try:
        source = json.loads(dataset.source)
        uri = source.get("uri") or source.get("path")
    except (TypeError, ValueError, AttributeError):
        return None
    if not uri:
        return None
    uri = str(uri)
    return Path(uri.removeprefix("file://")) if uri.startswith(("/", "file://")) else Path(uri)


def recorded_sha256(path: Path, run_tags: dict[str, str]) -> str | None:
    """What the file's SHA-256 should be: the course's data/CHECKSUMS.sha256 for its datasets, else the run's tag."""
    try:
        if path.resolve().parent == course_data.DATA_DIR.resolve():
            expected = course_data.expected_checksums().get(path.name)
            if expected:
                return expected
    except OSError:
        pass
    return run_tags.get(DATA_SHA_TAG)


def _versions(client, model_name: str, version) -> list:
    if isinstance(version, list | tuple | set):
        return [mv for v in version for mv in _versions(client, model_name, v)]
    if version is None:
        found = client.search_model_versions(f"name = '{model_name}'")
        return sorted(found, key=lambda v: int(v.version))
    text = str(version)
    if text.isdigit():
        return [client.get_model_version(model_name, text)]
    return [client.get_model_version_by_alias(model_name, text)]


def deployment_records(
    model_name: str, root: str | Path | None = None, not_before: dict[str, int] | None = None
) -> pd.DataFrame:
    """Who answered with which version: prediction-log rows of ``model_name`` grouped by file, version and variant.

    Reads every JSON Lines log under ``<workspace>/predictions/`` and the pipeline's integration-test logs. Columns:
    ``log`` (path relative to the workspace), ``version``, ``variant`` (empty unless notebook 09 set one), ``rows``,
    ``first``, ``last`` (UTC times of the first and last prediction). ``not_before`` maps a version to its
    registration time (epoch ms): that version's rows logged earlier are dropped, they were answered by another model
    that had the same name and number (a registered model deleted and created again).
    """
    import pandas as pd

    from mlops_helpers.workspace import default_root

    base = Path(root) if root else default_root()
    rows = []
    for pattern in DEPLOYMENT_LOGS:
        for path in sorted(base.glob(pattern)):
            for row in serving.read_log(path):
                if row.get("model") == model_name and row.get("version") is not None and row.get("time"):
                    variant = row.get("variant") or ""
                    rows.append((str(path.relative_to(base)), str(row["version"]), str(variant), row["time"]))
    columns = ["log", "version", "variant", "rows", "first", "last"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows, columns=["log", "version", "variant", "time"])
    frame["time"] = pd.to_datetime(frame["time"], utc=True, format="ISO8601")
    for version, since_ms in (not_before or {}).items():
        if since_ms:
            frame = frame[
                (frame["version"] != version) | (frame["time"] >= pd.Timestamp(since_ms, unit="ms", tz="UTC"))
            ]
    grouped = frame.groupby(["log", "version", "variant"], sort=True)["time"].agg(["size", "min", "max"]).reset_index()
    return grouped.rename(columns={"size": "rows", "min": "first", "max": "last"})[columns]


def lineage(model_name: str, version: str | int | None = None, client=None, root: str | Path | None = None) -> Lineage:
    """The lineage of ``model_name``'s ``version`` (a number, an alias or a list of them; None: every version).

    data file (path, SHA-256 now and as recorded) -> MLflow dataset input (name, digest, rows, context) -> run (name,
    params, metrics) -> logged model -> registered version -> aliases (the ones on it now, and the ones the audit trail
    says were on it) and deployments (prediction-log rows answered by it, only those logged after it was registered).
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlops_helpers import pipeline

    client = client or mlflow.MlflowClient()
    graph = Lineage(model_name)
    aliases_now = {a: str(v) for a, v in client.get_registered_model(model_name).aliases.items()}
    events = pipeline.audit_events(client, model_name)
    hashed: dict[Path, str | None] = {}

    chosen = _versions(client, model_name, version)
    deployments = deployment_records(model_name, root, {str(mv.version): mv.creation_timestamp for mv in chosen})
    for mv in chosen:
        v = str(mv.version)
        version_node = graph.add(Node(
            f"version:{v}", "version", f"{model_name} v{v}",
            {"version": v, "order": int(v), "run_id": mv.run_id, "source": mv.source,
             "created_ms": mv.creation_timestamp, "tags": dict(mv.tags), "description": mv.description},
        ))  # fmt: skip

        # logged model and run
        model_id = mv.source.removeprefix("models:/") if str(mv.source).startswith("models:/m-") else None
        run = client.get_run(mv.run_id) if mv.run_id else None
        run_name = run.info.run_name if run else None
        if model_id:
            try:
                logged = mlflow.get_logged_model(model_id)
                artifact = logged.artifact_location
            except MlflowException:
                artifact = None
            graph.add(Node(f"model:{model_id}", "logged model", f"{model_id[:10]}...",
                           {"model_id": model_id, "artifact_location": artifact, "run_name": run_name}))  # fmt: skip
            graph.link(f"model:{model_id}", version_node.id, "registered as")
        if run is not None:
            params = dict(run.data.params)
            run_node = graph.add(Node(
                f"run:{run.info.run_id}", "run", run_name or run.info.run_id[:8],
                {"run_id": run.info.run_id, "params": params, "metrics": dict(run.data.metrics),
                 "family": params.get("family") or run.data.tags.get("family"), "tags": dict(run.data.tags),
                 "experiment_id": run.info.experiment_id, "order": run.info.start_time},
            ))  # fmt: skip
            graph.link(run_node.id, f"model:{model_id}" if model_id else version_node.id, "logged")
            for item in run.inputs.dataset_inputs:
                ds = item.dataset
                context = next((t.value for t in item.tags if t.key == "mlflow.data.context"), "")
                try:
                    rows = json.loads(ds.profile or "{}").get("num_rows")
                except ValueError:
                    rows = None
                ds_node = graph.add(Node(
                    f"dataset:{ds.name}:{ds.digest}", "dataset", f"{ds.name} ({ds.digest})",
                    {"name": ds.name, "digest": ds.digest, "rows": rows, "contexts": [], "source": ds.source},
                ))  # fmt: skip
                if context and context not in ds_node.attrs["contexts"]:
                    ds_node.attrs["contexts"].append(context)
                graph.link(ds_node.id, run_node.id, f"{context or 'input'} data")
                path = dataset_path(ds)
                if path is None:
                    continue
                if path not in hashed:
                    hashed[path] = course_data.sha256(path) if path.is_file() else None
                recorded = recorded_sha256(path, run.data.tags)
                file_node = graph.add(Node(
                    f"file:{path}", "data file", path.name,
                    {"path": str(path), "exists": hashed[path] is not None, "sha256": hashed[path],
                     "recorded_sha256": recorded, "verified": recorded is not None and recorded == hashed[path]},
                ))  # fmt: skip
                graph.link(file_node.id, ds_node.id, "read as")

        # aliases: now, and in the audit trail
        for alias in sorted(
            {a for a, on in aliases_now.items() if on == v} | {e["alias"] for e in events if e["version"] == v}
        ):
            history = [e for e in events if e["alias"] == alias]
            graph.add(
                Node(
                    f"alias:{alias}",
                    "alias",
                    f"@{alias}",
                    {"alias": alias, "now": aliases_now.get(alias), "events": history},
                )
            )
            relation = "named now" if aliases_now.get(alias) == v else "named before"
            graph.link(version_node.id, f"alias:{alias}", relation)

        # deployments: rows answered by this version, logged after it was registered
        mine = deployments[deployments["version"] == v] if len(deployments) else deployments
        for record in mine.itertuples(index=False):
            name = Path(record.log).stem + (f" [{record.variant}]" if record.variant else "")
            graph.add(Node(
                f"deployment:{record.log}:{v}:{record.variant}", "deployment", f"{name}: {record.rows} rows",
                {"log": record.log, "version": v, "variant": record.variant, "rows": int(record.rows),
                 "first": record.first, "last": record.last},
            ))  # fmt: skip
            graph.link(version_node.id, f"deployment:{record.log}:{v}:{record.variant}", "served")
    return graph


# ----------------------------------------------------------------------------------------------------- audit trail
def audit_trail(model_name: str, client=None) -> pd.DataFrame:
    """Every recorded alias move of ``model_name``, oldest first: seq, at, by, action, alias, version, from, why."""
    import mlflow
    import pandas as pd

    from mlops_helpers import pipeline

    client = client or mlflow.MlflowClient()
    columns = ["seq", "at", "by", "action", "alias", "version", "from", "why"]
    events = pipeline.audit_events(client, model_name)
    frame = pd.DataFrame(events, columns=columns)
    frame["at"] = pd.to_datetime(frame["at"], utc=True)
    return frame.set_index("seq")


@dataclass
class Finding:
    """Something the audit trail does not explain.

    ``kind`` is ``"unrecorded move"`` (the registry's alias differs from where the trail left it) or ``"gap"`` (a
    recorded move found the alias somewhere other than where the trail had left it: something moved it in between).
    """

    kind: str
    alias: str
    registry: str | None
    trail: str | None
    seq: int | None = None

    def message(self) -> str:
        where = lambda v: "nowhere" if v is None else f"version {v}"  # noqa: E731
        if self.kind == "gap":
            return (
                f"event {self.seq} found @{self.alias} on {where(self.registry)}, but the trail had left it on "
                f"{where(self.trail)}: it was moved outside the tools before"
            )
        return f"@{self.alias} is on {where(self.registry)} in the registry, but the trail says {where(self.trail)}"


@dataclass
class AuditCheck:
    """The result of :func:`check_audit`: the aliases the trail explains, the registry's, and the findings."""

    replayed: dict[str, str]
    registry: dict[str, str]
    findings: list[Finding]
    events: int

    @property
    def unrecorded(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "unrecorded move"]

    @property
    def gaps(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "gap"]

    @property
    def ok(self) -> bool:
        return not self.findings

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{"kind": f.kind, "alias": f.alias, "seq": f.seq, "finding": f.message()} for f in self.findings]
        return pd.DataFrame(rows, columns=["kind", "alias", "seq", "finding"])


def replay(events: Iterable[dict]) -> dict[str, str]:
    """The aliases the events leave behind, applied in order (``set`` points an alias, ``delete`` removes it)."""
    state: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e["seq"]):
        if event["action"] == "set":
            state[event["alias"]] = str(event["version"])
        else:
            state.pop(event["alias"], None)
    return state


def check_audit(model_name: str, client=None, since: int = 0) -> AuditCheck:
    """Replay ``model_name``'s audit trail and compare it with the registry: a governance control.

    Findings: every alias whose registry version differs from where the trail left it (moved, set or deleted around
    the tools), and every *gap*: an event after ``since`` whose ``from`` disagrees with the replay so far, i.e. the
    alias had been moved outside the tools before that event. Gaps stay in the history for good, even after the
    registry is put right: the trail shows that it happened and where.
    """
    import mlflow

    from mlops_helpers import pipeline

    client = client or mlflow.MlflowClient()
    events = pipeline.audit_events(client, model_name)
    registry = {a: str(v) for a, v in client.get_registered_model(model_name).aliases.items()}
    findings, state = [], {}
    for event in events:
        alias = event["alias"]
        if event["seq"] > since and event.get("from") != state.get(alias):
            findings.append(Finding("gap", alias, event.get("from"), state.get(alias), event["seq"]))
        state = replay([*({"seq": 0, "action": "set", "alias": a, "version": v} for a, v in state.items()), event])
    for alias in sorted(set(state) | set(registry)):
        if state.get(alias) != registry.get(alias):
            findings.append(Finding("unrecorded move", alias, registry.get(alias), state.get(alias)))
    return AuditCheck(replayed=state, registry=registry, findings=findings, events=len(events))


# ------------------------------------------------------------------------------------------------- reproducibility
def parse_param(text: str) -> Any:
    """An MLflow parameter (always stored as text) back as the Python value it was logged from."""
    if text == "None":
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


@dataclass
class TrainingData:
    """What a pipeline version was trained on, re-read from disk and checked against what its run logged."""

    path: Path
    sha256: str
    recorded_sha256: str | None
    logged_digest: str
    digest: str
    train: Any  # pd.DataFrame
    holdout: Any  # pd.DataFrame


def training_data(run, check: bool = True) -> TrainingData:
    """Re-read the file a pipeline run trained on, split it as the run did, and check it is the same data.

    Two checks, both against what the run logged: the file's SHA-256 (tag ``pipeline.data_sha256``, when the run has
    it) and MLflow's digest of the training frame (the dataset input with context ``training``). With ``check``, a
    difference raises :class:`DataChanged`; the file may be rewritten with the same rows (its bytes differ, not the
    data), which is why the digest is the decisive check and the SHA-256 the quick one.
    """
    import mlflow
    import pandas as pd

    from mlops_helpers import pipeline

    params = run.data.params
    if "family" not in params or "holdout_days" not in params:
        raise ValueError(
            f"run {run.info.run_id} was not made by the pipeline (no 'family' and 'holdout_days' parameters): "
            "reproduce() rebuilds pipeline versions"
        )
    training = [i for i in run.inputs.dataset_inputs if any(t.value == "training" for t in i.tags)]
    if not training:
        raise ValueError(f"run {run.info.run_id} logged no dataset input with context 'training'")
    dataset = training[0].dataset
    path = dataset_path(dataset)
    if path is None or not path.is_file():
        raise DataChanged(f"the training data of run {run.info.run_id} was read from {path}, which no longer exists")
    sha = course_data.sha256(path)
    recorded = recorded_sha256(path, run.data.tags)
    if check and recorded is not None and recorded != sha:
        raise DataChanged(
            f"{path.name} has changed since run {run.info.run_name} trained on it: sha256 {sha[:12]}... now, "
            f"{recorded[:12]}... recorded. Restore the file (or find the data by its digest) before reproducing."
        )
    frame = course_data.prepare_bikes(pd.read_csv(path), source=str(path))
    train, holdout = pipeline.split_holdout(frame, int(params["holdout_days"]))
    digest = mlflow.data.from_pandas(
        train.reset_index(), source=str(path), name=dataset.name, targets=course_data.TARGET
    ).digest
    if check and digest != dataset.digest:
        raise DataChanged(
            f"the training rows read from {path.name} have MLflow digest {digest}, but run {run.info.run_name} "
            f"logged {dataset.digest}: the data changed. Reproducing on it would build a different model."
        )
    return TrainingData(path, sha, recorded, dataset.digest, digest, train, holdout)


@dataclass
class Reproduction:
    """The result of :func:`reproduce`: what was rebuilt from what, and how its predictions compare."""

    model_name: str
    version: str
    run_id: str
    family: str
    params: dict
    data_file: str
    sha256: str
    digest: str
    rows_compared: int
    max_abs_diff: float

    @property
    def identical(self) -> bool:
        """Bit-for-bit: every prediction equal (``max_abs_diff == 0.0``), not merely close."""
        return self.max_abs_diff == 0.0

    def summary(self) -> dict:
        return {
            "version": self.version,
            "family": self.family,
            "params": self.params,
            "data file": self.data_file,
            "sha256": self.sha256[:16],
            "mlflow digest": self.digest,
            "rows compared": self.rows_compared,
            "max |difference|": self.max_abs_diff,
            "identical": self.identical,
        }


def reproduce(model_name: str, version: str | int, client=None) -> Reproduction:
    """Retrain ``model_name``'s pipeline ``version`` from its run's logged parameters and data, and compare.

    Reads the run's ``family``, hyperparameters and ``holdout_days``; re-reads its training file and refuses with
    :class:`DataChanged` if the file or the training rows differ from what was logged; rebuilds the model with
    ``models.build_model`` (seeded) on the same rows; and compares its predictions with the registered model's on
    every row of the batch (training and holdout).
    """
    import mlflow
    import numpy as np
    import pandas as pd

    from mlops_helpers import models

    client = client or mlflow.MlflowClient()
    mv = _versions(client, model_name, version)[0]
    run = client.get_run(mv.run_id)
    found = training_data(run)
    params = {k: parse_param(v) for k, v in run.data.params.items()}
    family, _ = params.pop("family"), params.pop("holdout_days")
    rebuilt = models.build_model(family, params)
    X_train, y_train = course_data.xy(found.train)
    rebuilt.fit(X_train, y_train)
    X_all, _ = course_data.xy(pd.concat([found.train, found.holdout]))
    registered = mlflow.pyfunc.load_model(f"models:/{model_name}/{mv.version}")
    diff = np.abs(np.asarray(registered.predict(X_all), dtype="float64") - rebuilt.predict(X_all))
    return Reproduction(
        model_name, str(mv.version), run.info.run_id, family, params, found.path.name, found.sha256, found.digest,
        len(X_all), float(diff.max()),
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------------ model card
#: The inputs the drift section checks (as notebook 07's monitoring job does): numeric, then categorical codes.
DRIFT_NUMERIC = ("temp", "atemp", "hum", "windspeed", "hr")
DRIFT_CATEGORICAL = ("weather", "workingday")


def monthly_rmse(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The error of ``model`` (anything with ``predict``) on ``frame``, month by month.

    One row per calendar month present: ``hours``, mean ``rentals`` and ``rmse``.
    """
    import numpy as np
    import pandas as pd

    X, y = course_data.xy(frame)
    errors = pd.DataFrame({"y": y, "error": np.asarray(model.predict(X), dtype="float64") - y}, index=frame.index)
    grouped = errors.groupby(errors.index.to_period("M"))
    table = pd.DataFrame({
        "hours": grouped.size(),
        "rentals": grouped["y"].mean(),
        "rmse": grouped["error"].apply(lambda e: float(np.sqrt((e**2).mean()))),
    })  # fmt: skip
    table.index = table.index.strftime("%Y-%m")
    table.index.name = "month"
    return table


def _tag(name: str, mv, registered) -> str | None:
    return mv.tags.get(name) or registered.tags.get(name)


def _markdown_table(frame: pd.DataFrame, digits: int = 2, index: bool = True) -> str:
    """A GitHub-flavoured markdown table (pandas' ``to_markdown`` needs tabulate, which the course does not pin)."""
    import numbers

    table = frame.reset_index() if index else frame

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, bool | str) or not isinstance(value, numbers.Number):
            return str(value).replace("|", "\\|")
        return str(value) if isinstance(value, numbers.Integral) else f"{value:.{digits}f}"

    numeric = [_is_numeric(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def model_card(
    model_name: str,
    version: str | int,
    client=None,
    until: str = "2012-01-01",
    drift_months: int = 1,
) -> str:
    """A model card in markdown for a pipeline version (a number or an alias), generated from what is recorded.

    - header: version, aliases now, run, family and hyperparameters, logged model;
    - intended use and owners: the tags ``card.intended_use`` and ``owner`` (version tag, else registered-model tag)
      and the actors of the audit trail's moves of this version;
    - training data: the file, its SHA-256 checked against the run's record, the training and holdout rows and the
      MLflow digest (re-read with :func:`training_data`, so a changed file refuses to make a card);
    - metrics: the ones the run logged, and the error month by month after the batch, up to ``until``, computed now
      from ``data/Bikeshare.csv`` with the registered model;
    - drift: ``monitoring.drift_table`` of the training rows against the first ``drift_months`` months after the batch;
    - limits: the tag ``card.limits`` plus what the numbers show (where the error exceeds the holdout's);
    - the alias history of this version, from the audit trail.
    """
    import mlflow
    import pandas as pd

    from mlops_helpers import monitoring, pipeline

    client = client or mlflow.MlflowClient()
    mv = _versions(client, model_name, version)[0]
    v = str(mv.version)
    registered = client.get_registered_model(model_name)
    run = client.get_run(mv.run_id)
    found = training_data(run)
    params = {k: parse_param(val) for k, val in run.data.params.items()}
    family, holdout_days = params.pop("family"), params.pop("holdout_days")
    aliases = sorted(a for a, on in registered.aliases.items() if str(on) == v)
    events = [e for e in pipeline.audit_events(client, model_name) if e["version"] == v or e["from"] == v]

    # the error after the batch, month by month, and the drift of the first months
    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{v}")
    batch_end = found.holdout.index.max()
    later_start = (batch_end + pd.Timedelta(hours=1)).to_period("M").to_timestamp()
    if later_start <= batch_end:
        later_start = (later_start + pd.offsets.MonthBegin(1)).normalize()
    bikes = course_data.load_bikes()
    later = bikes.loc[(bikes.index >= later_start) & (bikes.index < pd.Timestamp(until))]
    monthly = monthly_rmse(model, later) if len(later) else pd.DataFrame(columns=["hours", "rentals", "rmse"])
    holdout_rmse = run.data.metrics.get("holdout_rmse")
    if holdout_rmse and len(monthly):
        monthly["x holdout RMSE"] = monthly["rmse"] / holdout_rmse
    drift_end = later_start + pd.DateOffset(months=drift_months)
    drift_window = later.loc[later.index < drift_end]
    drift = None
    if len(drift_window):
        drift = monitoring.drift_table(
            found.train[list(DRIFT_NUMERIC + DRIFT_CATEGORICAL)], drift_window[list(DRIFT_NUMERIC + DRIFT_CATEGORICAL)],
            numeric=list(DRIFT_NUMERIC), categorical=list(DRIFT_CATEGORICAL),
        )  # fmt: skip

    owners = [o for o in (mv.tags.get(OWNER_TAG), registered.tags.get(OWNER_TAG)) if o]
    actors = sorted({e["by"] for e in events})
    intended = _tag(INTENDED_USE_TAG, mv, registered) or "_Not recorded: set the tag `card.intended_use`._"
    stated_limits = _tag(LIMITS_TAG, mv, registered)
    span = lambda f: f"{f.index.min():%Y-%m-%d %H:%M} to {f.index.max():%Y-%m-%d %H:%M}"  # noqa: E731
    sha_state = (
        "matches the SHA-256 the run recorded" if found.recorded_sha256 == found.sha256
        else "no SHA-256 was recorded by the run; the MLflow digest below matches"
    )  # fmt: skip

    lines = [
        f"# Model card: {model_name} version {v}",
        "",
        "| | |",
        "|---|---|",
        f"| registered model | `{model_name}` |",
        f"| version | {v} (aliases now: {', '.join('`@' + a + '`' for a in aliases) or 'none'}) |",
        f"| registered | {pd.Timestamp(mv.creation_timestamp, unit='ms'):%Y-%m-%d} |",
        f"| run | `{run.info.run_name}` (`{run.info.run_id}`) |",
        f"| model | {family} {json.dumps(params, sort_keys=True)} |",
        f"| logged model | `{mv.source}` |",
        "",
        "## Intended use",
        "",
        intended,
        "",
        "## Owners",
        "",
        f"- accountable: {', '.join(owners) if owners else '_not recorded: set the tag `owner`_'}",
        f"- moved its aliases (audit trail): {', '.join(actors) if actors else 'nobody yet'}",
        "",
        "## Training data",
        "",
        f"- file `{found.path.name}`, sha256 `{found.sha256}`: {sha_state}",
        f"- training: {len(found.train):,} hours, {span(found.train)}, MLflow digest `{found.digest}`",
        f"- holdout (evaluation): the last {holdout_days} days, {len(found.holdout):,} hours, {span(found.holdout)}",
        "",
        "## Metrics",
        "",
        "Logged by the run (rentals per hour):",
        "",
        _markdown_table(pd.DataFrame({"value": run.data.metrics}).sort_index().rename_axis("metric")),
        "",
        f"The error after the batch, by month, computed now from `{course_data.BIKES_FILE}` with the registered model:",
        "",
        _markdown_table(monthly) if len(monthly) else "_no later months in the data_",
        "",
    ]
    if drift is not None:
        drifted = drift[drift["drifted"]].sort_values("psi", ascending=False)
        names = ", ".join(f"`{c}` (PSI {p:.2f})" for c, p in drifted["psi"].items()) or "none"
        lines += [
            f"## Drift: training data vs {later_start:%Y-%m}"
            + (f" to {drift_end - pd.Timedelta(days=1):%Y-%m}" if drift_months > 1 else ""),
            "",
            f"{len(drifted)} of {len(drift)} inputs drifted (PSI >= {monitoring.PSI_THRESHOLD}): {names}.",
            "",
            _markdown_table(drift[["kind", "psi", "p_value", "drifted"]], digits=3),
            "",
        ]
    limits = [
        f"- Trained on {span(found.train)[:10]} to {span(found.train)[-16:-6]}, one city (Washington DC), "
        "hourly weather as recorded: it has seen no later season and no other city."
    ]
    if holdout_rmse and len(monthly):
        worst = monthly["rmse"].idxmax()
        over = monthly.index[monthly["rmse"] > 1.25 * holdout_rmse].tolist()
        limits.append(
            f"- Its error after the batch peaks in {worst} at RMSE {monthly.loc[worst, 'rmse']:.1f}, "
            f"{monthly.loc[worst, 'x holdout RMSE']:.1f} x the holdout's {holdout_rmse:.1f}"
            + (f"; above 1.25 x in {', '.join(over)}: retrain before relying on it there." if over else ".")
        )
    if drift is not None and drift["drifted"].any():
        limits.append(f"- Inputs drift within {drift_months} month(s) of the batch: monitor them (notebooks 06-07).")
    if stated_limits:
        limits.append(f"- {stated_limits}")
    lines += ["## Limits", "", *limits, ""]
    lines += ["## Alias history (audit trail)", ""]
    if events:
        history = pd.DataFrame(events)[["seq", "at", "by", "action", "alias", "version", "from", "why"]]
        lines.append(_markdown_table(history, index=False))
    else:
        lines.append("_No recorded alias moves._")
    lines += [
        "",
        "## Lineage",
        "",
        f"`{found.path.name}` -> dataset `{found.digest}` -> run `{run.info.run_name}` -> `{mv.source}` -> "
        f"`{model_name}` version {v}",
        "",
    ]
    return "\n".join(lines)


def save_model_card(
    model_name: str, version: str | int, card: str, client=None, root: str | Path | None = None
) -> Path:
    """Write ``card`` to ``<workspace>/model_cards/<model>-v<N>.md``, log it on the version's run as
    ``model_card.md`` and tag the version ``model_card`` with that artifact's URI. Returns the file's path."""
    import mlflow

    from mlops_helpers.workspace import default_root

    client = client or mlflow.MlflowClient()
    mv = _versions(client, model_name, version)[0]
    path = (Path(root) if root else default_root()) / "model_cards" / f"{model_name}-v{mv.version}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card)
    client.log_text(mv.run_id, card, "model_card.md")
    client.set_model_version_tag(model_name, mv.version, "model_card", f"runs:/{mv.run_id}/model_card.md")
    return path


# ---------------------------------------------------------------------------------------------------- command line
def main(argv: list[str] | None = None) -> int:
    """``python -m mlops_helpers.governance audit|lineage|card|reproduce``: the controls, for CI or a cron job.

    ``audit`` exits 1 when an alias was moved outside the tools (and, with ``--strict``, on gaps in the history too);
    ``reproduce`` exits 1 when the data changed or the predictions differ. Both print one line per finding.
    """
    import argparse
    import sys

    from mlops_helpers import checkpoints, workspace

    parser = argparse.ArgumentParser(
        prog="python -m mlops_helpers.governance", description=main.__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("audit", "replay the audit trail and compare it with the registry"),
        ("lineage", "print the lineage of a version as a Mermaid flowchart"),
        ("card", "write the model card of a version to the workspace and log it on its run"),
        ("reproduce", "retrain a pipeline version and compare its predictions"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model-name", default=checkpoints.MODEL_NAME)
        p.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: the course workspace)")
        if name == "audit":
            p.add_argument("--since", type=int, default=0, help="report gaps only after this event number")
            p.add_argument("--strict", action="store_true", help="fail on gaps in the history too")
        else:
            p.add_argument("--version", default="champion", help="a version number or an alias (default: champion)")
    args = parser.parse_args(argv)

    import mlflow

    if args.tracking_uri:
        workspace.quiet()
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    else:
        workspace.setup()
    if args.command == "audit":
        check = check_audit(args.model_name, since=args.since)
        for finding in check.findings:
            print(f"{finding.kind}: {finding.message()}")
        failed = bool(check.unrecorded) or (args.strict and bool(check.gaps))
        print(f"audit: {check.events} events, {len(check.unrecorded)} unrecorded moves, {len(check.gaps)} gaps")
        return 1 if failed else 0
    if args.command == "lineage":
        print(lineage(args.model_name, args.version).to_mermaid())
        return 0
    if args.command == "card":
        card = model_card(args.model_name, args.version)
        print(save_model_card(args.model_name, args.version, card))
        return 0
    try:
        result = reproduce(args.model_name, args.version)
    except DataChanged as refusal:
        print(f"reproduce: REFUSED, {refusal}", file=sys.stderr)
        return 1
    print(json.dumps(result.summary(), default=str))
    return 0 if result.identical else 1


if __name__ == "__main__":
    import sys

    sys.exit(main())
