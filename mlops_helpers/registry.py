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

**Several writers, and writers that crash.** Two pipeline runs can overlap (a schedule and a push, a cell run twice,
two learners on one tracking server), and a run can be killed at any instant. So every write holds the model's
:class:`Lease`, an exclusive right to change its aliases that a crashed holder cannot keep (it expires), and every
change is made so that a crash leaves something the next writer can finish off:

- the lease is the registered-model tag ``registry.lease``: its holder's token, host, PID and process start time,
  why, and a heartbeat renewed every ``ttl / 3`` seconds on a background thread. It lives in MLflow itself, so it
  works against a remote tracking server too (two machines share only the server). A writer waits while a live
  holder has it; it takes it over when the holder's process is gone (seen at once on the same host, by PID and start
  time) or its heartbeat is older than ``ttl`` (any host), and then undoes the holder's unfinished changes;
- every alias move is written ahead: the audit event is recorded as ``pending``, the alias moved, the event
  confirmed. A crash in between leaves a pending event that the audit check reports as ``interrupted`` (a crash, not
  a move made around the tools: it does not fail the check) and the next writer settles;
- a version is registered with the tag ``registry.lease`` naming its writer, so a half registration (no alias yet)
  of a crashed writer is found and deleted;
- :meth:`Lease.undo` puts back only what its own writer changed, and only where the registry still shows that
  change: an alias someone else moved since is left alone and reported. A refusal never restores a snapshot.

What MLflow's API can and cannot guarantee: it has no compare-and-swap and no transaction spanning two calls (a tag
write always wins; a move and its record are two requests). So the lease is claimed by *write, wait, verify*: a
writer that finds it free writes its claim, waits ``settle`` seconds and reads it back, and of two claims made at
once the later write wins and the earlier writer sees it lost. That is exclusive only while no writer takes longer
than ``settle`` between reading the lease free and writing its claim, and while the hosts' clocks agree to well
within ``ttl``. A holder paused for longer than ``ttl`` (a suspended VM, a stalled network) loses the lease to the
next writer, which undoes its changes; the paused holder re-reads the lease before each write (a fencing check) and
stops there, but a write already on the wire when it lost still lands. These windows are small, and when they are hit
the audit check shows it (a gap or an unrecorded move); they are not closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from mlops_helpers.failpoints import failpoint
from mlops_helpers.names import AUDIT_TAG_PREFIX, CHALLENGER, CHAMPION, LEASE_TAG, MODEL_NAME, PREVIOUS

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

#: The fields of one audit event, in the order tables show them.
EVENT_FIELDS = ("seq", "at", "by", "action", "alias", "version", "from", "why")
#: The actions that move aliases; a ``recover`` event records what a recovery did (a lease taken over, a version
#: deleted) and moves nothing.
ALIAS_ACTIONS = ("set", "delete")

#: Seconds a lease lives without a heartbeat (its holder renews it every third of that).
LEASE_TTL = 30.0
#: Seconds a writer waits after writing its claim before reading it back (see the module docstring).
LEASE_SETTLE = 0.25
#: Seconds a writer waits for a live holder to finish before giving up (:class:`LeaseHeld`).
LEASE_WAIT = 120.0
_POLL = 0.5
HOST = socket.gethostname()

_held: dict[tuple[str, str], Lease] = {}  # the leases this process holds, by (registry URI, model name)
_held_lock = threading.Lock()
_own_tokens: set[str] = set()  # every lease this process has held: what restore() may put back


class RegistryError(ValueError):
    """The registry cannot do what was asked (no such version or alias, nothing to roll back to); the message says
    what is missing."""


class LeaseHeld(RegistryError):
    """Another live writer kept the model's lease for longer than this writer would wait."""


class LeaseLost(RegistryError):
    """This writer's lease was taken over (it stalled for longer than the lease lives): it must write nothing more."""


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


def iso(epoch: float) -> str:
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SSZ`` (UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


# ------------------------------------------------------------------------------------------ processes and leases
def process_alive(pid: int, born: float | None = None) -> bool:
    """True while process ``pid`` runs on this host and (with ``born``, its start time) is still the same process,
    not a later one that reused the PID. A zombie (exited, not yet reaped) counts as gone."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return born is None or abs(proc.create_time() - born) < 1.0
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def this_process() -> dict[str, Any]:
    """``{"host", "pid", "born"}`` of the running process: what a lease or a run records of its owner."""
    import psutil

    return {"host": HOST, "pid": os.getpid(), "born": psutil.Process().create_time()}


def owner_gone(owner: dict[str, Any]) -> bool | None:
    """Whether the process ``owner`` describes (see :func:`this_process`) has ended: known only on its own host
    (None elsewhere)."""
    if owner.get("host") != HOST:
        return None
    return not process_alive(int(owner["pid"]), owner.get("born"))


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds on a daemon thread until :meth:`stop` (or ``beat`` returns False).
    A ``beat`` that raises (a network hiccup) is tried again at the next interval."""

    def __init__(self, beat: Callable[[], Any], interval: float) -> None:
        self.beat, self.interval = beat, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Heartbeat:
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self.beat() is False:
                    return
            except Exception:  # the next beat tries again; a lease that expires meanwhile is lost
                continue


@dataclass(frozen=True)
class Holder:
    """Who holds a model's lease, as its tag records it: token, process (host, PID, start time), since when, last
    heartbeat, time to live, why and by whom; ``done`` once its changes are complete (nothing to undo)."""

    token: str
    host: str
    pid: int
    born: float
    since: float
    beat: float
    ttl: float
    why: str
    by: str
    done: bool = False

    @classmethod
    def parse(cls, text: str | None) -> Holder | None:
        """The holder a lease tag names; None for no tag (an unreadable tag counts as expired)."""
        if not text:
            return None
        try:
            found = json.loads(text)
            return cls(**{f.name: found[f.name] for f in fields(cls) if f.name in found})
        except (ValueError, TypeError):
            return cls("unreadable", "?", 0, 0.0, 0.0, 0.0, 0.0, f"an unreadable lease tag: {text[:80]!r}", "?")

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    def stale(self, now: float | None = None) -> str | None:
        """Why the lease may be taken over (its process is gone, or it expired), or None while it is valid."""
        now = time.time() if now is None else now
        if owner_gone({"host": self.host, "pid": self.pid, "born": self.born}):
            return f"its process (pid {self.pid} on {self.host}) is gone"
        if now > self.beat + self.ttl:
            return f"it expired at {iso(self.beat + self.ttl)} (no heartbeat for {now - self.beat:.0f} s)"
        return None

    def describe(self) -> str:
        return f"{self.by} (pid {self.pid} on {self.host}: {self.why}), holding it since {iso(self.since)}"


class Lease:
    """An exclusive, expiring right to change one registered model's aliases (see the module docstring for what it
    guarantees and what MLflow does not let it guarantee). Take it with :meth:`Registry.lease`.

    ``recovered`` lists what taking it over from a crashed holder did. :meth:`undo` puts back this writer's own
    changes where nobody changed them since; :meth:`commit` marks them complete.
    """

    def __init__(
        self,
        registry: Registry,
        why: str,
        by: str | None = None,
        *,
        ttl: float = LEASE_TTL,
        settle: float = LEASE_SETTLE,
        wait: float = LEASE_WAIT,
        echo: Callable[[str], Any] | None = None,
    ) -> None:
        self.registry, self.why, self.by = registry, why, actor(by)
        self.ttl, self.settle, self.wait, self.echo = ttl, settle, wait, echo
        self.token = uuid.uuid4().hex
        self.lost = self.done = self.created = False
        self.recovered: list[str] = []
        self._since = 0.0
        self._heartbeat = Heartbeat(self._renew, ttl / 3)

    def __repr__(self) -> str:
        return f"<Lease {self.registry.name} {self.token[:8]} {'lost' if self.lost else 'held'}: {self.why}>"

    def record(self) -> Holder:
        me = this_process()
        return Holder(self.token, me["host"], me["pid"], me["born"], self._since, time.time(), self.ttl, self.why,
                      self.by, self.done)  # fmt: skip

    def acquire(self) -> Lease:
        """Wait until the lease is free or stale, claim it, and undo a stale holder's unfinished changes."""
        deadline, told = time.monotonic() + self.wait, None
        while True:
            current = self.registry._holder(create_for=self)
            stale = current.stale() if current else None
            if (current is None or stale) and self._claim():
                self._take_over(current, stale)
                return self
            if current is not None and not stale:
                if time.monotonic() > deadline:
                    raise LeaseHeld(
                        f"{self.registry.name}'s aliases are being changed by {current.describe()}; waited "
                        f"{self.wait:.0f} s. If that process is gone, its lease expires at "
                        f"{iso(current.beat + current.ttl)} and the next writer undoes its unfinished changes."
                    )
                if self.echo and told != current.token:
                    self.echo(f"waiting for the registry lease: held by {current.describe()}")
                    told = current.token
            time.sleep(_POLL)

    def _claim(self) -> bool:
        self._since = time.time()
        self.registry._write_tag(LEASE_TAG, self.record().dump())
        time.sleep(self.settle)
        now = self.registry._holder()
        return now is not None and now.token == self.token

    def _take_over(self, previous: Holder | None, stale: str | None) -> None:
        _own_tokens.add(self.token)
        with _held_lock:
            _held[self.registry.key] = self
        self._heartbeat.start()
        try:
            self.recovered = self.registry._take_over(previous, stale or "", self.token)
        except BaseException:
            self.abandon()  # half a recovery: the lease expires and the next writer does it again
            raise

    def _renew(self) -> bool:
        current = self.registry._holder()
        if current is None or current.token != self.token:
            self.lost = True
            return False
        self.registry._write_tag(LEASE_TAG, self.record().dump())
        return True

    def verify(self, tags: dict[str, str]) -> None:
        """Fencing: raise :class:`LeaseLost` unless the lease tag (in ``tags``, freshly read) is still this one."""
        current = Holder.parse(tags.get(LEASE_TAG))
        if self.lost or current is None or current.token != self.token:
            self.lost = True
            who = current.describe() if current else "nobody (the tag was deleted)"
            raise LeaseLost(
                f"the lease on {self.registry.name} is now held by {who}: this writer ({self.why}) stalled for "
                f"more than {self.ttl:.0f} s and lost it; it writes nothing more (the new holder undid its changes)"
            )

    def commit(self) -> None:
        """Mark this writer's changes complete: a crash from here on leaves nothing to undo."""
        self.done = True
        self.registry._write_tag(LEASE_TAG, self.record().dump())

    def undo(self, why: str) -> Undo:
        """Put back this writer's own alias changes and delete the versions it registered, where nobody changed them
        since (anything else is left alone and listed in ``left``)."""
        if self.lost:
            return Undo([], ["the lease was lost: the writer that took it over undid this writer's changes"])
        return self.registry._undo(self.token, why)

    def abandon(self) -> None:
        """Stop renewing the lease without releasing it: it expires, and the next writer finishes what this one could
        not (undo or commit failed, the registry unreachable)."""
        self._heartbeat.stop()
        with _held_lock:
            if _held.get(self.registry.key) is self:
                del _held[self.registry.key]

    def release(self) -> None:
        """Stop the heartbeat and delete the lease tag (and the model, if this lease created it and it stayed empty)."""
        from mlflow.exceptions import MlflowException

        self._heartbeat.stop()
        with _held_lock:
            if _held.get(self.registry.key) is self:
                del _held[self.registry.key]
        if self.lost:
            return
        with contextlib.suppress(MlflowException):
            current = self.registry._holder()
            if current is not None and current.token == self.token:
                self.registry.client.delete_registered_model_tag(self.registry.name, LEASE_TAG)
            if self.created and not self.registry.versions():
                self.registry.client.delete_registered_model(self.registry.name)


def _finish(lease: Lease, step: Callable[[], Any]) -> None:
    """Run the lease's last step (commit or undo), then release it; if the step fails, abandon it instead."""
    try:
        step()
    except BaseException:
        lease.abandon()
        raise
    lease.release()


@dataclass
class Undo:
    """What :meth:`Lease.undo` did (``done``, one line each) and what it left alone because someone else changed it
    (``left``)."""

    done: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------------- the registry
class Registry:
    """One registered model: its aliases and versions, and every alias move recorded in its audit trail."""

    def __init__(self, name: str = MODEL_NAME, client: MlflowClient | None = None) -> None:
        import mlflow

        self.name = name
        self.client = client or mlflow.MlflowClient()

    def __repr__(self) -> str:
        return f"<Registry {self.name} {self.aliases()}>"

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the model across ``Registry`` objects: its registry URI and name."""
        return str(getattr(self.client, "_registry_uri", "")), self.name

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

    def holder(self) -> Holder | None:
        """Who holds the model's lease now (None: nobody, or no such model)."""
        from mlflow.exceptions import MlflowException

        try:
            return self._holder()
        except MlflowException:
            return None

    def leftovers(self) -> list[str]:
        """What a crashed writer left on the model, one line each (read only): a stale lease, interrupted moves."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return []
        holder = Holder.parse(model.tags.get(LEASE_TAG))
        stale = holder.stale() if holder else None
        if holder is not None and not stale:
            return []  # a live writer holds it: it settled what was left before it took it, and its moves are its own
        found = []
        if holder is not None:
            what = "nothing to undo" if holder.done else "its unfinished changes are undone by the next writer"
            found.append(f"the lease of a crashed writer, {holder.describe()}: {stale}; {what}")
        found += [f.message() for f in self.check().findings if f.kind == "interrupted"]
        return found

    # -- writing (every alias change is recorded, under the lease) -----------------------------------------------
    @contextlib.contextmanager
    def lease(self, why: str, by: str | None = None, *, wait: float = LEASE_WAIT,
              echo: Callable[[str], Any] | None = None) -> Iterator[Lease]:  # fmt: skip
        """Hold the model's lease for the block (re-entrant: a lease this process holds already is used as is).

        The outermost block commits its changes when it ends normally; if it raises, it first undoes them (only
        where nobody changed them since). A lease whose undo or commit fails is not released: it expires, and the
        next writer finishes the job. :class:`LeaseHeld` after ``wait`` seconds of a live holder.
        """
        with _held_lock:
            held = _held.get(self.key)
        if held is not None:
            if held.lost:
                raise LeaseLost(f"the lease on {self.name} was lost: this writer ({held.why}) writes nothing more")
            yield held
            return
        lease = Lease(self, why, by, wait=wait, echo=echo).acquire()
        try:
            yield lease
        except BaseException as exc:
            reason = f"undone: {why} did not finish ({type(exc).__name__})"
            with contextlib.suppress(Exception):  # the original error matters more; the lease then expires
                _finish(lease, lambda: lease.undo(reason))
            raise
        _finish(lease, lease.commit)

    def move(self, alias: str, version: str | int, why: str, by: str | None = None) -> dict:
        """Point ``alias`` at ``version`` and record who moved it, when and why.

        Two records: an event appended to the audit trail (every move), and the version's tag ``alias.<alias>``
        (the latest move of that alias to this version, readable on the version's page in the UI).
        """
        with self.lease(why, by):
            event = self._change("set", alias, str(version), why, by)
            stamp = {"at": event["at"], "by": event["by"], "why": why}
            self.client.set_model_version_tag(self.name, str(version), f"alias.{alias}", json.dumps(stamp))
        return event

    def remove(self, alias: str, why: str, by: str | None = None) -> dict | None:
        """Delete ``alias`` (if it exists) and record it; the event, or None if there was no such alias."""
        if alias not in self.aliases():
            return None
        with self.lease(why, by):
            return self._change("delete", alias, None, why, by)

    def register(self, model_uri: str, why: str, tags: dict[str, str] | None = None) -> str:
        """Register ``model_uri`` as a new version, point ``challenger`` at it (recorded), and return its number."""
        import mlflow

        with self.lease(why) as lease:
            version = str(
                mlflow.register_model(model_uri, self.name, tags={**(tags or {}), LEASE_TAG: lease.token}).version
            )
            failpoint("registry.after-register")
            self.move(CHALLENGER, version, why)
        return version

    def promote(self, version: str | int, why: str, by: str | None = None) -> dict:
        """``champion`` -> ``version``; the old champion stays reachable as ``previous-champion``, and ``challenger``
        is removed when it pointed at ``version``. ``by`` names who decided (an approver; default: :func:`actor`) in
        every event. Returns ``{"champion", "previous-champion"}``."""
        version = str(version)
        with self.lease(why, by):
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
        with self.lease(why):
            aliases = self.aliases()
            if PREVIOUS not in aliases:
                raise RegistryError(f"{self.name} has no {PREVIOUS!r} alias: nothing to roll back to")
            current, previous = aliases.get(CHAMPION), aliases[PREVIOUS]
            self.move(CHAMPION, previous, why)
            if current:
                self.move(PREVIOUS, current, f"rolled back: {why}")
        return {CHAMPION: previous, PREVIOUS: current}

    def restore(self, state: dict[str, Any], why: str = "restored after a refusal") -> list[str]:
        """Put aliases and versions back as in ``state`` (from :meth:`state`), but only the changes this process
        made itself (under its own leases); an alias or version someone else changed since is left alone. Returns
        what was left alone, one line each. A pipeline run uses the sharper :meth:`Lease.undo`."""
        left: list[str] = []
        with self.lease(why):
            model = self.client.get_registered_model(self.name)
            last = {e["alias"]: e for e in _parse_events(model.tags) if e["action"] in ALIAS_ACTIONS}
            now = {alias: str(v) for alias, v in model.aliases.items()}
            for alias in sorted(set(now) | set(state["aliases"])):
                want = state["aliases"].get(alias)
                if want == now.get(alias):
                    continue
                if last.get(alias, {}).get("lease") not in _own_tokens:
                    left.append(f"@{alias} was changed by another writer: left on {_where(now.get(alias))}")
                    continue
                self._change("delete" if want is None else "set", alias, want, why, None)
            left += self._discard(_own_tokens, why, record=False, keep=set(state["versions"])).left
        if not state["exists"] and self.exists() and not self.versions():
            self.client.delete_registered_model(self.name)
        return left

    def recover(self, why: str = "recovery") -> list[str]:
        """Take the lease (which undoes a crashed holder's unfinished changes) and give it back; what was done."""
        with self.lease(why) as lease:
            return list(lease.recovered)

    # -- the lease and write-ahead moves (private) ---------------------------------------------------------------
    def _holder(self, create_for: Lease | None = None) -> Holder | None:
        """The lease's holder now; with ``create_for``, a missing model is created first (a lease needs its tag)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            if create_for is None:
                raise
            with contextlib.suppress(MlflowException):  # another writer may create it at the same moment
                self.client.create_registered_model(self.name)
                create_for.created = True
            model = self.client.get_registered_model(self.name)
        return Holder.parse(model.tags.get(LEASE_TAG))

    def _write_tag(self, key: str, value: str) -> None:
        self.client.set_registered_model_tag(self.name, key, value)

    def _held_lease(self) -> Lease:
        with _held_lock:
            held = _held.get(self.key)
        if held is None:
            raise RuntimeError("an alias change outside Registry.lease(): this is a bug in the registry module")
        return held

    def _change(
        self, action: str, alias: str, version: str | None, why: str, by: str | None, undoes: str | None = None
    ) -> dict | None:
        """Move or delete an alias, written ahead: a pending event, the move, the event confirmed. ``undoes``: the
        lease whose change this move takes back (an undo or a recovery)."""
        lease = self._held_lease()
        model = self.client.get_registered_model(self.name)
        lease.verify(model.tags)
        previous = model.aliases.get(alias)
        previous = None if previous is None else str(previous)
        if action == "delete" and previous is None:
            return None
        event = {**self._event(model.tags, action, why, by, alias=alias, version=version), "from": previous}
        event["why"], event["lease"] = why, lease.token  # the field order of EVENT_FIELDS, then the lease
        if undoes:
            event["undoes"] = undoes
        self._write_event({**event, "state": "pending"})
        failpoint("registry.before-alias")
        try:
            if action == "set":
                self.client.set_registered_model_alias(self.name, alias, str(version))
            else:
                self.client.delete_registered_model_alias(self.name, alias)
        except Exception:
            self._settle_failed(event)
            raise
        failpoint("registry.after-alias")
        self._write_event(event)
        return event

    def _settle_failed(self, event: dict) -> None:
        """After a move that raised: confirm the event if the move happened anyway, else mark it failed."""
        with contextlib.suppress(Exception):  # unreachable registry: the event stays pending, the next writer settles
            happened = self.aliases().get(event["alias"]) == event["version"]
            self._write_event(event if happened else {**event, "state": "failed"})

    def _event(self, tags: dict[str, str], action: str, why: str, by: str | None, **what: Any) -> dict:
        seq = max((e["seq"] for e in _parse_events(tags)), default=0) + 1
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {"seq": seq, "at": at, "by": actor(by), "action": action, "alias": None, "version": None,
                "from": None, **what, "why": why}  # fmt: skip

    def _write_event(self, event: dict) -> None:
        self._write_tag(f"{AUDIT_TAG_PREFIX}{event['seq']:05d}", json.dumps(event))

    def note(self, why: str, version: str | None = None) -> dict:
        """Record a ``recover`` event (under the lease): something a recovery did that moves no alias."""
        lease = self._held_lease()
        tags = self.client.get_registered_model(self.name).tags
        lease.verify(tags)
        event = {**self._event(tags, "recover", why, lease.by, version=version), "lease": lease.token}
        self._write_event(event)
        return event

    def _take_over(self, previous: Holder | None, stale: str, token: str) -> list[str]:
        """Under a freshly taken lease (``token``): record the takeover and undo the unfinished changes of the
        previous holder, and of any writer whose move was left pending without a lease (its tag deleted by hand)."""
        lines: list[str] = []
        if previous is not None:
            lines.append(f"took over the registry lease of {previous.describe()}: {stale}")
            self.note(lines[-1])
            if not previous.done:
                who = f"{previous.by} (pid {previous.pid} on {previous.host}: {previous.why})"
                undone = self._undo(previous.token, f"recovered: undo the unfinished changes of {who}", record=True)
                lines += undone.done + undone.left
        seen = {token, previous.token if previous else None}
        orphans = {e.get("lease") for e in self.events() if e.get("state") == "pending"} - seen - {None}
        for orphan in sorted(orphans):
            lines.append(f"a move left pending by writer {orphan[:8]}, which holds no lease: settled and undone")
            self.note(lines[-1])
            undone = self._undo(orphan, "recovered: undo the changes of a writer that left a move pending", True)
            lines += undone.done + undone.left
        return lines

    def _undo(self, token: str, why: str, record: bool = False, seen: frozenset[str] = frozenset()) -> Undo:
        """Put back the alias changes made under lease ``token`` where the registry still shows them, then delete the
        versions it registered that no alias points at (recorded as ``recover`` events when ``record``).

        Its own undo moves (events with ``undoes``) are not reverted but finished: a writer that crashed while
        undoing someone's changes has them undone to the end, never put back."""
        model = self.client.get_registered_model(self.name)
        aliases = {alias: str(v) for alias, v in model.aliases.items()}
        moves = self._settle_pending([e for e in _parse_events(model.tags) if e.get("lease") == token], aliases)
        result = Undo()
        changes = net_changes([e for e in moves if not e.get("undoes")])
        for alias, (original, left_on) in changes.items():
            now = aliases.get(alias)
            if now == original:
                continue  # already as it was
            if now != left_on:
                result.left.append(f"@{alias} is on {_where(now)}, not on {_where(left_on)} where the undone writer "
                                   "left it: someone changed it since, so it is left alone")  # fmt: skip
                continue
            self._change("delete" if original is None else "set", alias, original, why, None, undoes=token)
            result.done.append(f"@{alias} back on {_where(original)} (was {_where(now)})")
        for other in sorted({e["undoes"] for e in moves if e.get("undoes")} - {token} - seen):
            finished = self._undo(other, why, record, seen | {token})
            result.done += finished.done
            result.left += finished.left
        discarded = self._discard({token}, why, record)
        return Undo(result.done + discarded.done, result.left + discarded.left)

    def _settle_pending(self, events: list[dict], aliases: dict[str, str]) -> list[dict]:
        """The alias events of a writer, its pending ones settled as ``interrupted`` (applied or not, as the
        registry shows) and rewritten so: the one rewrite the trail allows, once, of an unconfirmed record."""
        settled = []
        moves = [e for e in events if e["action"] in ALIAS_ACTIONS]
        for i, event in enumerate(moves):
            if event.get("state") == "pending":
                later = next((e for e in moves[i + 1 :] if e["alias"] == event["alias"]), None)
                event = {**event, "state": "interrupted", "applied": is_applied(event, later, aliases)}
                self._write_event(event)
            settled.append(event)
        return settled

    def _discard(self, tokens: set[str], why: str, record: bool, keep: set[int] = frozenset()) -> Undo:
        """Delete the versions registered under one of ``tokens`` (not in ``keep``) that no alias points at."""
        aliased = set(self.aliases().values())
        result = Undo()
        for mv in self.versions():
            number = str(mv.version)
            if mv.tags.get(LEASE_TAG) not in tokens or int(number) in keep:
                continue
            if number in aliased:
                result.left.append(f"version {number} still has an alias: kept")
                continue
            self.client.delete_model_version(self.name, number)
            line = f"deleted version {number}, registered by the undone writer (its model stays logged on its run)"
            result.done.append(line)
            if record:
                self.note(f"{why}: {line}", version=number)
        return result

    # -- the audit trail -----------------------------------------------------------------------------------------
    def events(self) -> list[dict]:
        """Every recorded event, oldest first: ``{seq, at, by, action (set|delete|recover), alias, version, from,
        why}`` (and the writer's ``lease``; ``state`` on a move not confirmed)."""
        return _parse_events(self.client.get_registered_model(self.name).tags)

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
        after the registry is put right: the trail shows that it happened and where. A move recorded ahead but never
        confirmed is *interrupted* (a crash between the record and the move, or a move in flight): reported, and
        replayed as the registry shows it, but not a failure.
        """
        model = self.client.get_registered_model(self.name)  # one read: the trail and the aliases of one moment
        registry = {alias: str(version) for alias, version in model.aliases.items()}
        events = _parse_events(model.tags)
        moves = [e for e in events if e["action"] in ALIAS_ACTIONS]
        findings: list[Finding] = []
        state: dict[str, str] = {}
        for i, event in enumerate(moves):
            alias = event["alias"]
            later = next((e for e in moves[i + 1 :] if e["alias"] == alias), None)
            applied = is_applied(event, later, registry)
            if event.get("state") == "pending":
                findings.append(
                    Finding("interrupted", alias, registry.get(alias), target(event), event["seq"], applied)
                )
            if not applied:
                continue
            if event["seq"] > since and event.get("from") != state.get(alias):
                findings.append(Finding("gap", alias, event.get("from"), state.get(alias), event["seq"]))
            apply(state, event)
        for alias in sorted(set(state) | set(registry)):
            if state.get(alias) != registry.get(alias):
                findings.append(Finding("unrecorded move", alias, registry.get(alias), state.get(alias)))
        holder = Holder.parse(model.tags.get(LEASE_TAG))
        return AuditCheck(replayed=state, registry=registry, findings=findings, events=len(events), lease=holder)


def _parse_events(tags: dict[str, str]) -> list[dict]:
    prefix = AUDIT_TAG_PREFIX
    events = [json.loads(v) for k, v in tags.items() if k.startswith(prefix) and k[len(prefix) :].isdigit()]
    return sorted(events, key=lambda e: e["seq"])


def _where(version: str | None) -> str:
    return "nowhere" if version is None else f"version {version}"


def target(event: dict) -> str | None:
    """Where an alias event leaves its alias: the version for ``set``, nowhere (None) for ``delete``."""
    return str(event["version"]) if event["action"] == "set" else None


def is_applied(event: dict, later: dict | None, registry: dict[str, str]) -> bool:
    """Whether an alias event took effect: confirmed ones did, failed ones did not, settled ones say so; a pending
    one did if the next event on its alias found it done (``later``), or, with none, if the registry shows it."""
    state = event.get("state")
    if state is None:
        return True
    if state == "interrupted":
        return bool(event.get("applied"))
    if state == "pending":
        found = later.get("from") if later is not None else registry.get(event["alias"])
        return found == target(event)
    return False


def apply(state: dict[str, str], event: dict) -> None:
    """Apply one alias event to ``state`` (``{alias: version}``) in place."""
    if event["action"] == "set":
        state[event["alias"]] = str(event["version"])
    else:
        state.pop(event["alias"], None)


def replay(events: Iterable[dict]) -> dict[str, str]:
    """The aliases the events leave behind, applied in order (``set`` points an alias, ``delete`` removes it; moves
    that failed or were interrupted before they happened are skipped, ``recover`` events move nothing)."""
    state: dict[str, str] = {}
    for event in sorted(events, key=lambda e: e["seq"]):
        if event["action"] in ALIAS_ACTIONS and is_applied(event, None, {event["alias"]: target(event)}):
            apply(state, event)
    return state


def net_changes(events: list[dict]) -> dict[str, tuple[str | None, str | None]]:
    """Per alias, in order of first change: ``(where it was before the first event, where the last one left it)``,
    over the events that took effect."""
    changes: dict[str, tuple[str | None, str | None]] = {}
    for event in events:
        if event["action"] not in ALIAS_ACTIONS or not is_applied(event, None, {}):
            continue
        alias = event["alias"]
        original = changes[alias][0] if alias in changes else event.get("from")
        changes[alias] = (original, target(event))
    return changes


@dataclass
class Finding:
    """Something the audit trail does not explain, or a move it recorded ahead and never confirmed.

    ``kind`` is ``"unrecorded move"`` (the registry's alias differs from where the trail left it), ``"gap"`` (a
    recorded move found the alias somewhere other than where the trail had left it: something moved it in between)
    or ``"interrupted"`` (``trail`` is where the move was going, ``applied`` whether the registry shows it done).
    """

    kind: str
    alias: str
    registry: str | None
    trail: str | None
    seq: int | None = None
    applied: bool | None = None

    def message(self) -> str:
        if self.kind == "gap":
            return (
                f"event {self.seq} found @{self.alias} on {_where(self.registry)}, but the trail had left it on "
                f"{_where(self.trail)}: it was moved outside the tools before"
            )
        if self.kind == "interrupted":
            done = "it happened" if self.applied else "it did not happen"
            return (
                f"event {self.seq} (@{self.alias} to {_where(self.trail)}) was recorded ahead but never confirmed: "
                f"a writer crashed (or is still writing) between the record and the move; the registry shows "
                f"{_where(self.registry)}, so {done}. Not a move around the tools; the next writer settles it"
            )
        return f"@{self.alias} is on {_where(self.registry)} in the registry, but the trail says {_where(self.trail)}"


@dataclass
class AuditCheck:
    """The result of :meth:`Registry.check`: the aliases the trail explains, the registry's, the findings, and who
    holds the lease."""

    replayed: dict[str, str]
    registry: dict[str, str]
    findings: list[Finding]
    events: int
    lease: Holder | None = None

    @property
    def unrecorded(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "unrecorded move"]

    @property
    def gaps(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "gap"]

    @property
    def interrupted(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "interrupted"]

    @property
    def ok(self) -> bool:
        """True when the trail explains the registry (interrupted moves are crashes, not findings against it)."""
        return not self.unrecorded and not self.gaps

    def table(self) -> pd.DataFrame:
        import pandas as pd

        rows = [{"kind": f.kind, "alias": f.alias, "seq": f.seq, "finding": f.message()} for f in self.findings]
        return pd.DataFrame(rows, columns=["kind", "alias", "seq", "finding"])
