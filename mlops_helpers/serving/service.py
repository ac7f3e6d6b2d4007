"""The prediction service without HTTP: load the variants, predict, route, reload (notebooks 04 and 09).

:class:`PredictionService` holds everything the service decides; the FastAPI app (:mod:`~mlops_helpers.serving.app`)
only turns requests into calls of its methods and :class:`Refusal` into 4xx/5xx answers. So every rule here is
testable with plain Python: what is refused and why, who answers a key, what the log and the metrics record.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_helpers.registry import ModelRef, resolve
from mlops_helpers.serving.contract import Column, fast_predict, same_contract, signature_columns
from mlops_helpers.serving.metrics import ServiceMetrics
from mlops_helpers.serving.predlog import PredictionLog, default_log_path, log_rows
from mlops_helpers.serving.routing import Routing, routing_problem


class Refusal(Exception):
    """A request the service will not answer: the HTTP status and FastAPI-style errors (``loc``, ``msg``, ``type``)."""

    def __init__(self, msg: str, loc: list | None = None, status: int = 422, kind: str = "value_error") -> None:
        super().__init__(msg)
        self.status = status
        self.errors = [{"loc": loc or ["body"], "msg": msg, "type": kind}]


@dataclass
class Variant:
    """A model the service answers with: its role (``champion``/``challenger``), registry reference, predictor."""

    role: str
    ref: ModelRef
    columns: list[Column]
    predict_rows: Any
    order: list[str] | None

    @classmethod
    def load(cls, role: str, model_uri: str, model=None) -> Variant:
        import mlflow

        ref = resolve(model_uri)
        model = model or mlflow.pyfunc.load_model(model_uri)
        columns = signature_columns(model)
        predict_rows, order = fast_predict(model, columns)
        return cls(role, ref, columns, predict_rows, order)

    def describe(self) -> dict:
        return {"model": self.ref.name, "version": self.ref.version, "alias": self.ref.alias, "uri": self.ref.uri}

    def predict(self, rows: list[dict]) -> list[float]:
        """Predictions for validated rows; :class:`Refusal` when the model cannot compute them or they are not
        finite (a finite input that overflows the model's float32 trees, say)."""
        import mlflow
        import numpy as np
        import pandas as pd

        try:
            if self.order:
                inputs = np.array([[row[n] for n in self.order] for row in rows], dtype="float64")
            else:
                inputs = pd.DataFrame({c.name: np.array([row[c.name] for row in rows], dtype=c.dtype)
                                       for c in self.columns})  # fmt: skip
            with np.errstate(all="ignore"):
                values = np.asarray(self.predict_rows(inputs), dtype="float64").reshape(-1)
        except (ValueError, TypeError, ArithmeticError, mlflow.exceptions.MlflowException) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise Refusal(f"the model cannot predict for this input: {message}") from None
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            where = ["body", "batch", "records", int(bad[0])] if len(rows) > 1 else ["body", "record"]
            raise Refusal("the prediction is not finite: input values outside the model's range", where)
        return [float(v) for v in values]


def _check_same_contract(champion: Variant, challenger: Variant) -> None:
    differ = same_contract(champion.columns, challenger.columns)
    if differ:
        raise ValueError(
            f"the challenger ({challenger.ref.uri}) has another input signature than the champion: "
            f"{differ} differ; both variants must accept the same requests"
        )


@dataclass(frozen=True)
class Answer:
    """What ``/predict`` returns: who answered and the predictions, one per row."""

    model: str
    version: str | None
    variant: str
    request_id: str
    predictions: list[float]

    def to_dict(self) -> dict:
        return {"model": self.model, "version": self.version, "variant": self.variant,
                "request_id": self.request_id, "predictions": self.predictions}  # fmt: skip


class PredictionService:
    """One or two variants of a registered model, routed, logged and measured.

    ``challenger_uri`` adds a second variant (notebook 09): ``mode`` is ``canary`` (the default then), ``shadow`` or
    ``single``, and ``weight`` the canary's share of request keys. ``model``/``challenger_model`` may be given already
    loaded; ``metrics`` defaults to a new :class:`ServiceMetrics` on its own Prometheus registry.
    """

    def __init__(
        self,
        model_uri: str,
        *,
        challenger_uri: str | None = None,
        mode: str | None = None,
        weight: float = 0.1,
        log_path: str | Path | None = None,
        metrics: ServiceMetrics | None = None,
        model=None,
        challenger_model=None,
    ) -> None:
        self.model_uri, self.challenger_uri = model_uri, challenger_uri
        champion = Variant.load("champion", model_uri, model)
        challenger = Variant.load("challenger", challenger_uri, challenger_model) if challenger_uri else None
        if challenger:
            _check_same_contract(champion, challenger)
        self.routing = Routing(champion, challenger, mode or ("canary" if challenger else "single"), float(weight))
        self.columns = champion.columns
        self.log = PredictionLog(log_path or default_log_path(champion.ref.name))
        self.metrics = metrics or ServiceMetrics()
        self.metrics.publish(self.routing)

    @property
    def ref(self) -> ModelRef:
        """The champion's registry reference."""
        return self.routing.champion.ref

    def health(self) -> dict:
        """The model being served (the champion): name, version, alias and URI; and the routing mode."""
        ref = self.ref
        return {"status": "ok", "model": ref.name, "version": ref.version, "alias": ref.alias, "uri": ref.uri,
                "mode": self.routing.mode}  # fmt: skip

    def predict(self, rows: list[dict], key: str | None = None) -> Answer:
        """Predict for validated rows; every row goes to the prediction log before the answer is returned.

        ``key`` keeps canary routing sticky; without one, the request is routed on its own id. In shadow mode the
        challenger predicts too (inline, after the answer is computed: it costs the challenger's predict time); its
        rows are logged with ``served: false`` and a refusal by the shadow never reaches the client.
        """
        request_id = uuid.uuid4().hex
        routing = self.routing  # this request's view, whatever /routing or /reload do meanwhile
        answering = routing.answering(key if key is not None else request_id)
        values = self._timed(answering, rows)
        at = datetime.now(UTC).isoformat(timespec="microseconds")
        entries = log_rows(answering.ref, answering.role, rows, values, request_id, key, at, served=True)
        shadow = routing.shadow()
        if shadow is not None:
            try:
                shadowed = self._timed(shadow, rows)
            except Refusal:
                shadowed = None
            if shadowed is not None:
                entries += log_rows(shadow.ref, shadow.role, rows, shadowed, request_id, key, at, served=False)
                self.metrics.shadowed(shadow.ref.version, len(shadowed))
        self.log.append(entries)
        self.metrics.answered(answering.role, answering.ref.version, values)
        return Answer(answering.ref.name, answering.ref.version, answering.role, request_id, values)

    def _timed(self, variant: Variant, rows: list[dict]) -> list[float]:
        started = time.perf_counter()
        try:
            return variant.predict(rows)
        finally:
            self.metrics.predict_seconds.labels(variant.role).observe(time.perf_counter() - started)

    def routing_state(self) -> dict:
        """The routing mode, the canary weight and the two variants."""
        routing = self.routing
        return {
            "mode": routing.mode,
            "weight": routing.weight,
            "variants": {
                "champion": routing.champion.describe(),
                "challenger": routing.challenger.describe() if routing.challenger is not None else None,
            },
        }

    def set_routing(self, change: dict) -> dict:
        """Change ``mode`` and/or ``weight`` without a restart. :class:`Refusal`: 422 names what is wrong, 409 when
        a mode needs a challenger and none is loaded."""
        unknown = sorted(set(change) - {"mode", "weight"})
        if unknown:
            raise Refusal("unknown field: send mode and/or weight", ["body", unknown[0]])
        mode, weight = change.get("mode", self.routing.mode), change.get("weight", self.routing.weight)
        problem = routing_problem(mode, weight)
        if problem:
            raise Refusal(problem[1], ["body", problem[0]])
        if mode != "single" and self.routing.challenger is None:
            msg = f"mode {mode!r} needs a challenger and none is loaded: register one and POST /reload"
            raise Refusal(msg, ["body", "mode"], status=409, kind="conflict")
        self.routing = self.routing.changed(mode=mode, weight=float(weight))
        self.metrics.publish(self.routing)
        return self.routing_state()

    def reload(self) -> dict:
        """Resolve the champion and challenger URIs again (an alias moved) and load what changed, without a restart.

        A challenger alias that no longer exists (promoted, or rolled back) leaves the champion alone in ``single``
        mode. A champion that cannot be loaded is a :class:`Refusal` (503) and the service keeps serving what it had.
        """
        import mlflow

        old = self.routing
        try:
            champion = self._fresh(old.champion, self.model_uri)
            challenger = self._fresh(old.challenger, self.challenger_uri, missing_ok=True)
            if challenger is not None:
                _check_same_contract(champion, challenger)
        except (mlflow.exceptions.MlflowException, ValueError, OSError) as exc:
            message = str(exc).strip().splitlines()[0]
            raise Refusal(f"reload failed, still serving as before: {message}", ["reload"], status=503) from None
        mode = old.mode if challenger is not None else "single"
        self.routing = old.changed(champion=champion, challenger=challenger, mode=mode)
        self.metrics.publish(self.routing)
        before = {v.role: v.ref.version for v in old.variants()}
        after = {v.role: v.ref.version for v in self.routing.variants()}
        before.setdefault("challenger", None)
        after.setdefault("challenger", None)
        return {**self.routing_state(), "changed": before != after, "before": before}

    def _fresh(self, current: Variant | None, uri: str | None, missing_ok: bool = False) -> Variant | None:
        """``current`` if ``uri`` still resolves to its version, else the newly resolved version, loaded."""
        from mlops_helpers.registry import RegistryError

        if uri is None:
            return None
        try:
            ref = resolve(uri)
        except RegistryError:
            if missing_ok:
                return None
            raise ValueError(f"{uri} resolves to no version") from None
        if current is not None and ref.version is not None and current.ref.version == ref.version:
            return current
        return Variant.load("challenger" if missing_ok else "champion", uri)
