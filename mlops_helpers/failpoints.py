"""Failpoints: named places where a fault-injection test kills or slows this process on purpose (issue 21's tests).

The registry and the pipeline call :func:`failpoint` at the moments a crash hurts most: ``registry.before-alias`` and
``registry.after-alias`` (an alias move recorded ahead, before and after the move itself), ``registry.after-register``
(a version registered, not yet named) and ``pipeline.before-<stage>`` (every stage boundary). Nothing happens unless
the environment variable ``MLOPS_FAILPOINTS`` names the point, so production runs pay one dictionary lookup::

    MLOPS_FAILPOINTS="registry.after-alias=kill@2"      # SIGKILL at the second alias move of the process
    MLOPS_FAILPOINTS="pipeline.before-evaluate=sleep:3;pipeline.before-promote=kill"

Actions: ``kill`` (SIGKILL: no ``finally``, no ``atexit``, like an OOM kill or a pulled plug), ``kill@N`` (at the
N-th time the point is reached), ``sleep:S`` (a slow writer), ``wait:PATH`` (block until the file ``PATH`` exists, at
most :data:`WAIT_LIMIT` seconds: a test holds a run at a point while it starts another, so runs overlap exactly
where it wants them to, whatever the machine's speed).
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path

#: The environment variable naming the failpoints: ``NAME=ACTION`` pairs separated by ``;``.
ENV_VAR = "MLOPS_FAILPOINTS"
#: The longest a ``wait:PATH`` failpoint blocks (seconds).
WAIT_LIMIT = 300.0
ACTIONS = ("kill", "kill@", "sleep:", "wait:")
_hits: Counter[str] = Counter()


def parse(spec: str) -> dict[str, str]:
    """``"a=kill;b=sleep:2"`` as ``{"a": "kill", "b": "sleep:2"}``; a ``ValueError`` names a malformed part."""
    points = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, sep, action = part.partition("=")
        if not sep or not action.strip().startswith(ACTIONS):
            raise ValueError(f"{ENV_VAR}: {part!r} is not NAME=kill, NAME=kill@N, NAME=sleep:SECONDS or NAME=wait:PATH")
        points[name.strip()] = action.strip()
    return points


def failpoint(name: str) -> None:
    """Kill or slow this process here if ``MLOPS_FAILPOINTS`` names ``name``; otherwise do nothing."""
    spec = os.environ.get(ENV_VAR)
    if not spec:
        return
    action = parse(spec).get(name)
    if action is None:
        return
    _hits[name] += 1
    if action.startswith("sleep:"):
        time.sleep(float(action.removeprefix("sleep:")))
    elif action.startswith("wait:"):
        deadline = time.monotonic() + WAIT_LIMIT
        while not Path(action.removeprefix("wait:")).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    elif action == "kill" or _hits[name] == int(action.removeprefix("kill@")):
        os.kill(os.getpid(), signal.SIGKILL)
