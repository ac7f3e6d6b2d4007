"""The model registry behind one small interface: aliases, versions, and the audit trail of alias moves (05, 09, 10).

Notebook 03 teaches the MLflow calls themselves (``register_model``, ``set_registered_model_alias``,
``get_model_version_by_alias``). :class:`Registry` is what the pipeline, the service and the governance checks use on
top of them, for one registered model:

- **read**: :meth:`~Registry.state` (aliases and versions, what a refusal must leave unchanged),
  :meth:`~Registry.version` (a number, an alias or ``latest`` to a version), :meth:`~Registry.load`;
- **write, recorded**: :meth:`~Registry.move`, :meth:`~Registry.remove`, :meth:`~Registry.register`,
  :meth:`~Registry.promote`, :meth:`~Registry.rollback` and :meth:`~Registry.restore` change aliases and append one
  event per change to the model's audit trail (registered-model tags ``audit.00001``, ``audit.00002``...: who, when,
  what, from where, why), never rewriting an earlier one;
- **check**: :meth:`~Registry.check` replays the trail and compares it with the registry, so an alias moved around
  these tools (a direct ``set_registered_model_alias``) is found (notebook 10, and ``python -m
  mlops_helpers.governance audit`` in a nightly job).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_helpers.names import AUDIT_TAG_PREFIX, CHALLENGER, CHAMPION, MODEL_NAME, PREVIOUS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: The fields of one audit event, in the order tables show them.
EVENT_FIELDS = ("seq", "at", "by", "action", "alias", "version", "from", "why")


class RegistryError(ValueError):
    """The registry cannot do what was asked (no such version or alias, nothing to roll back to); the message says
    what is missing."""


@dataclass(frozen=True)
class ModelRef:
    """What a model URI points at: the registered name, version and alias (``None`` where they do not apply)."""

    uri: str
    name: str
    version: str | None
    alias: str | None


def parse_model_uri(uri: str) -> tuple[str, str | None]:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` as ``(NAME, ALIAS or VERSION)``; other URIs (``runs:/``,
    ``models:/m-<id>``, a path) as ``(their last part, None)``."""
    if uri.startswith("models:/") and not uri.startswith("models:/m-"):
        rest = uri[len("models:/") :].strip("/")
        if "@" in rest:
            name, alias = rest.split("@", 1)
            return name, alias
        name, _, version = rest.partition("/")
        return name, version or None
    return uri.rstrip("/").rsplit("/", 1)[-1], None


def resolve(uri: str, client: MlflowClient | None = None) -> ModelRef:
    """The registered version a model URI points at now (an alias is resolved with ``MlflowClient``)."""
    name, ref = parse_model_uri(uri)
    if ref is None:
        return ModelRef(uri, name, None, None)
    version = Registry(name, client).version(ref)
    alias = ref if not ref.isdigit() and ref != "latest" else None
    return ModelRef(uri, name, str(version.version), alias)


def actor(name: str | None = None) -> str:
    """Who is moving an alias: ``name``, else the CI user (``GITHUB_ACTOR``), else the login, else ``pipeline``."""
    return name or os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "pipeline"


class Registry:
    """One registered model: its aliases and versions, and every alias move recorded in its audit trail."""

    def __init__(self, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
        import mlflow

        self.name = name
        self.client = client or mlflow.MlflowClient()

    def __repr__(self) -> str:
        return f"<Registry {self.name} {self.aliases()}>"

    # -- reading -------------------------------------------------------------------------------------------------
    def exists(self) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            return False
        return True

    def aliases(self) -> dict[str, str]:
        """``{alias: version}`` now (empty when the model does not exist)."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = self.client.get_registered_model(self.name).aliases
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in aliases.items()}

    def state(self) -> dict[str, Any]:
        """What a refusal must leave unchanged: ``{"exists", "aliases": {alias: version}, "versions": [numbers]}``."""
        if not self.exists():
            return {"exists": False, "aliases": {}, "versions": []}
        versions = sorted(int(v.version) for v in self.client.search_model_versions(f"name = '{self.name}'"))
        return {"exists": True, "aliases": self.aliases(), "versions": versions}

    def version(self, ref: str | int) -> ModelVersion:
        """The version ``ref`` names: a number, an alias, or ``latest``. :class:`RegistryError` if there is none."""
        from mlflow.exceptions import MlflowException

        text = str(ref)
        try:
            if text.isdigit():
                return self.client.get_model_version(self.name, text)
            if text == "latest":
                return max(self.versions(), key=lambda v: int(v.version))
            return self.client.get_model_version_by_alias(self.name, text)
        except (MlflowException, ValueError):
            what = f"version {text}" if text.isdigit() or text == "latest" else f"alias {text!r}"
            raise RegistryError(f"{self.name} has no {what}") from None

    def versions(self, refs: Iterable[str | int] | str | int | None = None) -> list[ModelVersion]:
        """The versions named by ``refs`` (one ref or several), or every version (``None``), oldest first."""
        if refs is None:
            return sorted(self.client.search_model_versions(f"name = '{self.name}'"), key=lambda v: int(v.version))
        if isinstance(refs, str | int):
            refs = [refs]
        return [self.version(ref) for ref in refs]

    def get(self, alias: str) -> ModelVersion | None:
        """The version ``alias`` points at, or None when the alias (or the model) does not exist."""
        try:
            return self.version(alias)
        except RegistryError:
            return None

    def load(self, ref: str | int):
        """Version ``ref`` (a number or an alias) as a pyfunc model."""
        import mlflow

        return mlflow.pyfunc.load_model(f"models:/{self.name}/{self.version(ref).version}")

    # -- writing (every alias change is recorded) ----------------------------------------------------------------
    def move(self, alias: str, version: str | int, why: str, by: str | None = None) -> dict:
        """Point ``alias`` at ``version`` and record who moved it, when and why.

        Two records: an event appended to the audit trail (every move), and the version's tag ``alias.<alias>``
        (the latest move of that alias to this version, readable on the version's page in the UI).
        """
        previous = self.aliases().get(alias)
        self.client.set_registered_model_alias(self.name, alias, str(version))
        event = self._record("set", alias, str(version), previous, why, by)
        stamp = {"at": event["at"], "by": event["by"], "why": why}
        self.client.set_model_version_tag(self.name, str(version), f"alias.{alias}", json.dumps(stamp))
        return event

    def remove(self, alias: str, why: str, by: str | None = None) -> dict | None:
        """Delete ``alias`` (if it exists) and record it; the event, or None if there was no such alias."""
        previous = self.aliases().get(alias)
        if previous is None:
            return None
        self.client.delete_registered_model_alias(self.name, alias)
        return self._record("delete", alias, None, previous, why, by)

    def register(self, model_uri: str, why: str, tags: dict[str, str] | None = None) -> str:
        """Register ``model_uri`` as a new version, point ``challenger`` at it (recorded), and return its number."""
        import mlflow

        version = str(mlflow.register_model(model_uri, self.name, tags=tags).version)
        self.move(CHALLENGER, version, why)
        return version

    def promote(self, version: str | int, why: str, by: str | None = None) -> dict:
        """``champion`` -> ``version``; the old champion stays reachable as ``previous-champion``, and ``challenger``
        is removed when it pointed at ``version``. ``by`` names who decided (an approver; default: :func:`actor`) in
        every event. Returns ``{"champion", "previous-champion"}``."""
        version = str(version)
        before = self.aliases()
        old = before.get(CHAMPION)
        if old and old != version:
            self.move(PREVIOUS, old, f"replaced by version {version}: {why}", by)
        self.move(CHAMPION, version, why, by)
        if before.get(CHALLENGER) == version:
            self.remove(CHALLENGER, f"promoted to {CHAMPION}: {why}", by)
        return {CHAMPION: version, PREVIOUS: old}

    def rollback(self, why: str = "rollback") -> dict:
        """Move ``champion`` back to ``previous-champion``, and the demoted one to ``previous-champion`` (so a second
        rollback undoes the first). Nothing is deleted. :class:`RegistryError` when there is nothing to go back to."""
        aliases = self.aliases()
        if PREVIOUS not in aliases:
            raise RegistryError(f"{self.name} has no {PREVIOUS!r} alias: nothing to roll back to")
        current, previous = aliases.get(CHAMPION), aliases[PREVIOUS]
        self.move(CHAMPION, previous, why)
        if current:
            self.move(PREVIOUS, current, f"rolled back: {why}")
        return {CHAMPION: previous, PREVIOUS: current}

    def restore(self, state: dict[str, Any], why: str = "restored after a refusal") -> None:
        """Put aliases and versions back as in ``state`` (from :meth:`state`), recording every alias change."""
        now = self.state()
        for alias, version in now["aliases"].items():
            if state["aliases"].get(alias) != version:
                self.remove(alias, why)
        for version in set(now["versions"]) - set(state["versions"]):
            self.client.delete_model_version(self.name, str(version))
        for alias, version in state["aliases"].items():
            if self.aliases().get(alias) != version:
                self.move(alias, version, why)
        after = self.state()
        if not state["exists"] and after["exists"] and not after["versions"]:
            self.client.delete_registered_model(self.name)

    # -- the audit trail -----------------------------------------------------------------------------------------
    def _record(self, action: str, alias: str, version: str | None, previous: str | None, why: str, by) -> dict:
        seq = max((e["seq"] for e in self.events()), default=0) + 1
        event = {
            "seq": seq,
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "by": actor(by),
            "action": action,
            "alias": alias,
            "version": version,
            "from": None if previous is None else str(previous),
            "why": why,
        }
        self.client.set_registered_model_tag(self.name, f"{AUDIT_TAG_PREFIX}{seq:05d}", json.dumps(event))
        return event

    def events(self) -> list[dict]:
        """Every recorded alias event, oldest first: ``{seq, at, by, action (set|delete), alias, version, from,
        why}``."""
        tags = self.client.get_registered_model(self.name).tags
        prefix = AUDIT_TAG_PREFIX
        events = [json.loads(v) for k, v in tags.items() if k.startswith(prefix) and k[len(prefix) :].isdigit()]
        return sorted(events, key=lambda e: e["seq"])

    def trail(self) -> pd.DataFrame:
        """The audit trail as a table indexed by ``seq``, ``at`` as UTC timestamps."""
        import pandas as pd

        frame = pd.DataFrame(self.events(), columns=list(EVENT_FIELDS))
        frame["at"] = pd.to_datetime(frame["at"], utc=True)
        return frame.set_index("seq")

    def check(self, since: int = 0) -> AuditCheck:
        """Replay the audit trail and compare it with the registry: a governance control.

        Findings: every alias whose registry version differs from where the trail left it (moved, set or deleted
        around the tools), and every *gap*: an event after ``since`` whose ``from`` disagrees with the replay so far,
        i.e. the alias had been moved outside the tools before that event. Gaps stay in the history for good, even
        after the registry is put right: the trail shows that it happened and where.
        """
        events = self.events()
        registry = self.aliases()
        findings: list[Finding] = []
        state: dict[str, str] = {}
        for event in events:
            alias = event["alias"]
            if event["seq"] > since and event.get("from") != state.get(alias):
                findings.append(Finding("gap", alias, event.get("from"), state.get(alias), event["seq"]))
            state = replay([*({"seq": 0, "action": "set", "alias": a, "version": v} for a, v in state.items()), event])
        for alias in sorted(set(state) | set(registry)):
            if state.get(alias) != registry.get(alias):
                findings.append(Finding("unrecorded move", alias, registry.get(alias), state.get(alias)))
        return AuditCheck(replayed=state, registry=registry, findings=findings, events=len(events))


def replay(events: Iterable[dict]) -> dict[str, str]:
    """The aliases the events leave behind, applied in order (``set`` points an alias, ``delete`` removes it)."""
    state: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e["seq"]):
        if event["action"] == "set":
            state[event["alias"]] = str(event["version"])
        else:
            state.pop(event["alias"], None)
    return state


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
        def where(version: str | None) -> str:
            return "nowhere" if version is None else f"version {version}"

        if self.kind == "gap":
            return (
                f"event {self.seq} found @{self.alias} on {where(self.registry)}, but the trail had left it on "
                f"{where(self.trail)}: it was moved outside the tools before"
            )
        return f"@{self.alias} is on {where(self.registry)} in the registry, but the trail says {where(self.trail)}"


@dataclass
class AuditCheck:
    """The result of :meth:`Registry.check`: the aliases the trail explains, the registry's, and the findings."""

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
