"""Who answers a request: champion or challenger, by mode and a sticky hash of the request key (notebook 09).

Modes: ``single`` (the champion answers everything); ``canary`` (a sticky share ``weight`` of request keys goes to
the challenger, which answers them); ``shadow`` (the champion answers everything and the challenger predicts on every
request too; its predictions are logged with ``served: false``, never returned).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

MODES = ("single", "canary", "shadow")
#: The request header whose value keeps canary routing sticky (a user, a station, the hour asked about).
KEY_HEADER = "X-Request-Key"
#: The answer header naming the variant that answered.
VARIANT_HEADER = "X-Variant"


def bucket(key: str) -> float:
    """A request key's place in [0, 1): the first 8 bytes of its SHA-256. The same key gets the same bucket in every
    process and on every machine (Python's ``hash`` is salted per process, so it would not be sticky)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def routing_problem(mode: Any, weight: Any) -> tuple[str, str] | None:
    """``(field, message)`` when ``mode`` or ``weight`` cannot be used for routing, else None."""
    if mode not in MODES:
        return "mode", f"mode must be one of {', '.join(MODES)}, not {mode!r}"
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        return "weight", f"weight must be between 0 and 1, not {weight!r}"
    return None


def route(key: str, mode: str, weight: float) -> str:
    """``"challenger"`` or ``"champion"``: who answers a request with ``key``.

    Only ``canary`` sends anything to the challenger: keys whose :func:`bucket` is below ``weight``. Routing is sticky
    (a key always lands on the same side for a given weight) and monotone (raising the weight only moves keys from
    the champion to the challenger, so nobody flips back and forth while a canary is ramped up).
    """
    problem = routing_problem(mode, weight)
    if problem:
        raise ValueError(problem[1])
    return "challenger" if mode == "canary" and bucket(key) < weight else "champion"


@dataclass(frozen=True)
class Routing:
    """The variants and how requests are split between them: one immutable snapshot.

    The service replaces its routing as a whole (:meth:`changed`), so a request that took the current snapshot sees
    one consistent champion, challenger, mode and weight while ``/routing`` or ``/reload`` change them.
    """

    champion: Any  # a service.Variant
    challenger: Any | None
    mode: str
    weight: float

    def __post_init__(self) -> None:
        problem = routing_problem(self.mode, self.weight)
        if problem:
            raise ValueError(problem[1])
        if self.mode != "single" and self.challenger is None:
            raise ValueError(f"mode {self.mode!r} needs a challenger: pass challenger_uri (--challenger)")

    def changed(self, **changes: Any) -> Routing:
        return replace(self, **changes)

    def answering(self, key: str):
        """The variant that answers a request with ``key``."""
        return self.challenger if route(key, self.mode, self.weight) == "challenger" else self.champion

    def shadow(self):
        """The variant that predicts without answering (shadow mode), or None."""
        return self.challenger if self.mode == "shadow" else None

    def variants(self) -> list:
        return [v for v in (self.champion, self.challenger) if v is not None]
