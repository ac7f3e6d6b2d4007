"""Lineage: where a registered version came from and where it went, as a graph you can query (notebook 10).

data file (path, SHA-256 now and as recorded) -> data version (the DVC version of the file the run recorded, if it
recorded one: notebook 11) -> MLflow dataset input (name, digest, rows, context) -> run (name, params, metrics) ->
logged model -> registered version -> aliases (now, and in the audit trail) and deployments (the prediction-log rows
answered by it). Everything comes from what the course already records: MLflow's runs, dataset inputs, tags and
registry, the Git history of a DVC repository, the audit trail (:mod:`mlops_helpers.registry`) and the prediction
logs. ``plots.lineage_graph`` draws it; :meth:`Lineage.to_mermaid` writes it for markdown.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers import data as course_data
from mlops_helpers.jsonl import read_jsonl
from mlops_helpers.names import DATA_SHA_TAG, DVC_MD5_TAG, DVC_PATH_TAG, DVC_REPO_TAG, DVC_REV_TAG

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow import MlflowClient

#: The kinds of node, upstream first: the columns of the lineage drawing.
KINDS = ("data file", "data version", "dataset", "run", "logged model", "version", "alias", "deployment")
#: Where prediction logs live in the workspace: the services' logs and the pipeline's integration tests.
DEPLOYMENT_LOGS = ("predictions/**/*.jsonl", "pipeline/integration-v*.jsonl")


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
        return sorted(found, key=node_order)

    def parents(self, key: str | Node) -> list[Node]:
        node = self.node(key)
        return sorted((self.nodes[e.source] for e in self.edges if e.target == node.id), key=node_order)

    def children(self, key: str | Node) -> list[Node]:
        node = self.node(key)
        return sorted((self.nodes[e.target] for e in self.edges if e.source == node.id), key=node_order)

    def _walk(self, key: str | Node, step) -> list[Node]:
        seen: dict[str, Node] = {}
        todo = [self.node(key)]
        while todo:
            for nxt in step(todo.pop()):
                if nxt.id not in seen:
                    seen[nxt.id] = nxt
                    todo.append(nxt)
        return sorted(seen.values(), key=node_order)

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
            {"kind": n.kind, "label": n.label, "facts": _facts(n)} for n in sorted(self.nodes.values(), key=node_order)
        ]
        return pd.DataFrame(rows, columns=["kind", "label", "facts"])

    # -- drawing
    def to_mermaid(self) -> str:
        """The graph as a Mermaid flowchart (GitHub, GitLab and JupyterLab render it in markdown)."""
        ids = {node.id: f"n{i}" for i, node in enumerate(sorted(self.nodes.values(), key=node_order))}
        lines = ["flowchart LR"]
        for node in sorted(self.nodes.values(), key=node_order):
            text = f"{node.kind}<br/>{node.label}".replace('"', "'")
            lines.append(f'    {ids[node.id]}["{text}"]')
        for edge in self.edges:
            lines.append(f"    {ids[edge.source]} -->|{edge.relation}| {ids[edge.target]}")
        return "\n".join(lines)


def node_order(node: Node) -> tuple:
    key = node.attrs.get("order", node.label)
    return (KINDS.index(node.kind), str(type(key)), key, node.id)


def _facts(node: Node) -> str:
    a = node.attrs
    if node.kind == "data file":
        return f"sha256 {str(a.get('sha256'))[:12]}, {_file_state(a)}"
    if node.kind == "data version":
        where = "as committed" if a.get("committed") else "NOT what the commit's DVC files say"
        return f"dvc md5 {a['md5'][:12]} at git {a['rev'][:7]}, {where}"
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


def _file_state(a: dict) -> str:
    if not a.get("exists"):
        return "the file is gone"
    if "md5" in a:  # tracked by DVC: compared with the version the run read
        return "is the version read" if a.get("verified") else "CHANGED since: another DVC version"
    if a.get("recorded_sha256") is None:
        return "no SHA-256 recorded at training"
    return "matches the record" if a.get("verified") else "CHANGED since training"


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


def md5(path: Path) -> str:
    """The MD5 of a file's bytes: the hash DVC 3 records for a file in ``.dvc`` files and ``dvc.lock``."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def committed_dvc_md5(repo: str | Path, rev: str, path: str) -> str | None:
    """The MD5 that commit ``rev`` of the Git repository ``repo`` records for ``path`` (relative to the repository):
    from ``<path>.dvc`` (``dvc add``) or else from ``dvc.lock`` (a pipeline's output); None if neither names it."""
    import yaml

    def show(name: str) -> dict | None:
        done = subprocess.run(["git", "-C", str(repo), "show", f"{rev}:{name}"], capture_output=True, text=True)
        return yaml.safe_load(done.stdout) if done.returncode == 0 else None

    tracked = show(f"{path}.dvc")
    for out in (tracked or {}).get("outs", []):
        if out.get("path") == Path(path).name:
            return out.get("md5")
    for stage in ((show("dvc.lock") or {}).get("stages") or {}).values():
        for out in stage.get("outs", []):
            if out.get("path") == path:
                return out.get("md5")
    return None


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
            for row in read_jsonl(path):
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


def lineage(
    model_name: str, version: str | int | list | None = None, client: MlflowClient | None = None,
    root: str | Path | None = None,
) -> Lineage:  # fmt: skip
    """The lineage of ``model_name``'s ``version`` (a number, an alias or a list of them; None: every version).

    Deployments count only the prediction-log rows logged after the version was registered (a model deleted and
    registered again reuses the numbers).
    """
    from mlops_helpers.registry import Registry

    registry = Registry(model_name, client)
    graph = Lineage(model_name)
    aliases_now = registry.aliases()
    events = registry.events()
    chosen = registry.versions(version)
    deployments = deployment_records(model_name, root, {str(mv.version): mv.creation_timestamp for mv in chosen})
    hashed: dict[Path, str | None] = {}
    for mv in chosen:
        version_id = _add_version(graph, mv)
        run = registry.client.get_run(mv.run_id) if mv.run_id else None
        upstream = _add_logged_model(graph, mv, version_id, run.info.run_name if run else None)
        if run is not None:
            _add_run(graph, run, upstream, hashed)
        _add_aliases(graph, str(mv.version), version_id, aliases_now, events)
        _add_deployments(graph, str(mv.version), version_id, deployments)
    return graph


def _add_version(graph: Lineage, mv) -> str:
    v = str(mv.version)
    node = graph.add(Node(
        f"version:{v}", "version", f"{graph.model_name} v{v}",
        {"version": v, "order": int(v), "run_id": mv.run_id, "source": mv.source,
         "created_ms": mv.creation_timestamp, "tags": dict(mv.tags), "description": mv.description},
    ))  # fmt: skip
    return node.id


def _add_logged_model(graph: Lineage, mv, version_id: str, run_name: str | None) -> str:
    """The logged model the version was registered from (its id is in ``source``); the id runs link to."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not str(mv.source).startswith("models:/m-"):
        return version_id
    model_id = mv.source.removeprefix("models:/")
    try:
        artifact = mlflow.get_logged_model(model_id).artifact_location
    except MlflowException:
        artifact = None
    graph.add(Node(f"model:{model_id}", "logged model", f"{model_id[:10]}...",
                   {"model_id": model_id, "artifact_location": artifact, "run_name": run_name}))  # fmt: skip
    graph.link(f"model:{model_id}", version_id, "registered as")
    return f"model:{model_id}"


def _add_run(graph: Lineage, run, downstream: str, hashed: dict[Path, str | None]) -> None:
    """The run, its dataset inputs, and the files they were read from (hashed once each)."""
    params = dict(run.data.params)
    run_node = graph.add(Node(
        f"run:{run.info.run_id}", "run", run.info.run_name or run.info.run_id[:8],
        {"run_id": run.info.run_id, "params": params, "metrics": dict(run.data.metrics),
         "family": params.get("family") or run.data.tags.get("family"), "tags": dict(run.data.tags),
         "experiment_id": run.info.experiment_id, "order": run.info.start_time},
    ))  # fmt: skip
    graph.link(run_node.id, downstream, "logged")
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
        if path is not None:
            _add_file(graph, path, ds_node.id, run.data.tags, hashed)


def _add_data_version(graph: Lineage, path: Path, dataset_id: str, run_tags: dict) -> str:
    """The DVC version the run recorded for ``path`` (its tags ``dvc.*``), between the file and the dataset; returns
    the id the file links to (the dataset's when the run recorded no DVC version of this file)."""
    repo, rev, tracked, recorded = (run_tags.get(t) for t in (DVC_REPO_TAG, DVC_REV_TAG, DVC_PATH_TAG, DVC_MD5_TAG))
    if not (repo and rev and tracked and recorded) or Path(repo, tracked).resolve() != path.resolve():
        return dataset_id
    committed = committed_dvc_md5(repo, rev, tracked)
    node = graph.add(Node(
        f"dvc:{repo}:{tracked}@{rev}", "data version", f"{tracked} @ {rev[:7]}",
        {"repo": repo, "rev": rev, "path": tracked, "md5": recorded, "committed_md5": committed,
         "committed": committed == recorded},
    ))  # fmt: skip
    graph.link(node.id, dataset_id, "read as")
    return node.id


def _add_file(graph: Lineage, path: Path, dataset_id: str, run_tags: dict, hashed: dict[Path, str | None]) -> None:
    downstream = _add_data_version(graph, path, dataset_id, run_tags)
    if path not in hashed:
        hashed[path] = course_data.sha256(path) if path.is_file() else None
    recorded = recorded_sha256(path, run_tags)
    facts = {"path": str(path), "exists": hashed[path] is not None, "sha256": hashed[path],
             "recorded_sha256": recorded, "verified": recorded is not None and recorded == hashed[path]}  # fmt: skip
    if downstream != dataset_id:  # a DVC-tracked file: is the file now the version the run read?
        facts["md5"] = md5(path) if path.is_file() else None
        facts["verified"] = facts["md5"] == graph.nodes[downstream].attrs["md5"]
    file_node = graph.add(Node(f"file:{path}", "data file", path.name, facts))
    graph.link(file_node.id, downstream, "tracked as" if downstream != dataset_id else "read as")


def _add_aliases(graph: Lineage, v: str, version_id: str, aliases_now: dict, events: list[dict]) -> None:
    """The aliases on the version now, and the ones the audit trail says were on it."""
    for alias in sorted({a for a, on in aliases_now.items() if on == v} | {e["alias"] for e in events
                                                                            if e["version"] == v}):  # fmt: skip
        history = [e for e in events if e["alias"] == alias]
        graph.add(Node(f"alias:{alias}", "alias", f"@{alias}",
                       {"alias": alias, "now": aliases_now.get(alias), "events": history}))  # fmt: skip
        graph.link(version_id, f"alias:{alias}", "named now" if aliases_now.get(alias) == v else "named before")


def _add_deployments(graph: Lineage, v: str, version_id: str, deployments: pd.DataFrame) -> None:
    """The prediction-log rows this version answered, one node per log file and variant."""
    mine = deployments[deployments["version"] == v] if len(deployments) else deployments
    for record in mine.itertuples(index=False):
        name = Path(record.log).stem + (f" [{record.variant}]" if record.variant else "")
        node_id = f"deployment:{record.log}:{v}:{record.variant}"
        graph.add(Node(node_id, "deployment", f"{name}: {record.rows} rows",
                       {"log": record.log, "version": v, "variant": record.variant, "rows": int(record.rows),
                        "first": record.first, "last": record.last}))  # fmt: skip
        graph.link(version_id, node_id, "served")
