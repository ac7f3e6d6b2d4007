"""The service's contract: request models generated from the model's signature, and the fast predict path (04).

Requests are validated by pydantic models generated from the signature, strictly, so that no input can crash the
service:

- numbers must be finite (``NaN``/``Infinity``, which Python's JSON parser accepts, are refused) and of the declared
  type: strings are not coerced to numbers (strict mode), integers are accepted for float columns;
- unknown fields are refused (a misspelt column must not be silently ignored); a batch holds 1 to :data:`MAX_BATCH`
  records; a body that is not a JSON object (a bare list, a string) is refused.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: The largest batch one request may carry.
MAX_BATCH = 10_000
#: A long batch is validated this many records at a time (see :func:`in_slices`).
SLICE = 500

#: MLflow column type -> (pandas dtype, python type, bounds). ``None`` bounds mean "any finite value".
TYPES: dict[str, tuple[str, type, tuple[int, int] | None]] = {
    "double": ("float64", float, None),
    "float": ("float32", float, None),
    "long": ("int64", int, (-(2**63), 2**63 - 1)),
    "integer": ("int32", int, (-(2**31), 2**31 - 1)),
    "boolean": ("bool", bool, None),
    "string": ("object", str, None),
}
NUMERIC = {"double", "float", "long", "integer"}


@dataclass(frozen=True)
class Column:
    """One input column of the model's signature."""

    name: str
    mlflow_type: str
    required: bool = True

    @property
    def dtype(self) -> str:
        return TYPES[self.mlflow_type][0]

    def example(self) -> Any:
        return {"double": 1.0, "float": 1.0, "long": 1, "integer": 1, "boolean": True, "string": "a"}[self.mlflow_type]


def signature_columns(model) -> list[Column]:
    """The input columns of a pyfunc model's signature. Raises ``ValueError`` if it has none the service supports."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise ValueError("the model has no column-based input signature: log it with `signature=` (notebook 01)")
    columns = []
    for spec in schema.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        if kind not in TYPES:
            raise ValueError(f"input {spec.name!r} has type {kind!r}, which the service does not support")
        columns.append(Column(spec.name, kind, getattr(spec, "required", True)))
    return columns


def same_contract(ours: list[Column], theirs: list[Column]) -> list[tuple[str, str]]:
    """The ``(name, type)`` pairs in one signature and not the other (empty: both accept the same requests)."""
    a = {(c.name, c.mlflow_type) for c in ours}
    b = {(c.name, c.mlflow_type) for c in theirs}
    return sorted(a ^ b)


def request_models(columns: list[Column]):
    """The pydantic models of a request, generated from the signature: ``(Record, Batch, Body)``.

    ``Body`` is what ``POST /predict`` accepts: a ``Record`` or a ``Batch`` (chosen by the presence of ``records``).
    """
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WrapValidator, create_model

    fields: dict[str, Any] = {}
    for column in columns:
        _, python_type, bounds = TYPES[column.mlflow_type]
        constraints: dict[str, Any] = {"strict": True}
        if python_type is float:
            constraints["allow_inf_nan"] = False
        if bounds:
            constraints["ge"], constraints["le"] = bounds
        annotated = Annotated[python_type, Field(**constraints)]
        fields[column.name] = (annotated, ...) if column.required else (annotated | None, None)
    example = {c.name: c.example() for c in columns}
    record = create_model(
        "Record", __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}), **fields
    )

    class Batch(BaseModel):
        model_config = ConfigDict(extra="forbid")
        records: Annotated[list[record], Field(min_length=1, max_length=MAX_BATCH), WrapValidator(in_slices)]  # type: ignore[valid-type]

    def which(value: Any) -> str:
        return "batch" if isinstance(value, dict) and "records" in value else "record"

    body = Annotated[
        Annotated[record, Tag("record")] | Annotated[Batch, Tag("batch")],  # type: ignore[valid-type]
        Discriminator(which),
    ]
    return record, Batch, body


def in_slices(value: Any, handler: Callable) -> Any:
    """Validate a long list of records :data:`SLICE` at a time: the same result as in one go, but pydantic returns
    to Python between slices, so the service's event loop (another thread) gets its turn every few milliseconds
    instead of waiting for all 10,000 records. On an error the whole list is validated again, once, so that the
    errors name each record's position in the whole batch."""
    from pydantic import ValidationError

    if not isinstance(value, list) or not SLICE < len(value) <= MAX_BATCH:
        return handler(value)
    records = []
    try:
        for start in range(0, len(value), SLICE):
            records.extend(handler(value[start : start + SLICE]))
    except ValidationError:
        return handler(value)
    return records


def fast_predict(model, columns: list[Column]) -> tuple[Callable, list[str] | None]:
    """``(predict, order)``: the function that predicts for validated rows, and how to hand them over.

    The request has already been validated against the signature, which is what pyfunc's schema enforcement and
    scikit-learn's input checks would do again. So for a scikit-learn estimator fitted on exactly the signature's
    numeric columns, ``order`` is its ``feature_names_in_`` and ``predict`` takes a float array in that order: the
    same numbers, about a third of the time of ``model.predict(frame)`` for one row. Otherwise ``order`` is ``None``
    and ``predict`` takes a DataFrame (the estimator's own ``predict`` for scikit-learn, else ``model.predict``).
    """
    if getattr(model, "loader_module", None) != "mlflow.sklearn":
        return model.predict, None
    estimator = model.get_raw_model()
    names = list(getattr(estimator, "feature_names_in_", []))
    if sorted(names) == sorted(c.name for c in columns) and all(c.mlflow_type in NUMERIC for c in columns):

        def predict_array(X):
            # The array has no column names: the order was checked above, so scikit-learn's reminder is noise.
            # (catch_warnings is process-wide: fine here, the service predicts on its one worker thread only.)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
                return estimator.predict(X)

        return predict_array, names
    return estimator.predict, None
