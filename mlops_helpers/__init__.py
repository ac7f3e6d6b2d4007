"""The plumbing behind the MLOps course notebooks, and the production versions of what the lessons build.

Each module does one job; its first docstring line says which, and the notebook that introduces it.

| module | its one job | first used in |
|---|---|---|
| ``names`` | the course's names: model, experiments, aliases, tags | 01 |
| ``workspace`` | where state lives, connecting MLflow to it (or to a server), telemetry off, quiet output | 00 |
| ``data`` | the datasets, their checksums, dtypes and time windows | 00 |
| ``environment`` | the pins: what is pinned, what is installed, what a logged model needs | 00 |
| ``plots`` | the figures the notebooks share | 00 |
| ``models`` | the model families, seeded, and how a model is logged | 01 |
| ``processes`` | background servers on 127.0.0.1: start, wait, stop by PID | 02 |
| ``exercises`` | exercises a learner can check: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()`` | 00 |
| ``catchup`` | catch-up cells: rebuild an earlier notebook's state so any notebook runs alone | 03 |
| ``registry`` | aliases, versions and the audit trail of alias moves (writer and checker); the write lease | 03 |
| ``jsonl`` | append-only JSON Lines files and their reader (prediction log, alert notifications) | 04 |
| ``serving`` | the prediction service (a package: contract, routing, log, metrics, service, app) | 04 |
| ``validation`` | the data contract a batch must meet | 05 |
| ``pipeline`` | the CI/CD stages, their config, the run and its CLI | 05 |
| ``monitoring`` | drift statistics (PSI, K-S, chi-square) for whole tables | 06 |
| ``alerting`` | Prometheus exposition, alert rules, Alertmanager config, webhook receiver | 07 |
| ``kfp_pipeline`` | the pipeline's six stages as four Kubeflow components and their pipeline | 08 |
| ``kfp_runtime`` | what a Kubeflow step does around its work: MLflow child runs, registry put back | 08 |
| ``release`` | the release decision: is the challenger better online? | 09 |
| ``manifests`` | the release on a cluster: KServe and Seldon manifests | 09 |
| ``governance`` | lineage, model cards, reproducibility (a package) and their CLI | 10 |
| ``course`` | the headless runner (papermill) and its CLI | all |
| ``failpoints`` | named places where fault-injection tests kill or slow a process | tests |

Importing the package is cheap and has no side effects: mlflow, evidently, kfp and matplotlib are imported only inside
the functions (or the modules) that use them.
"""

from pathlib import Path

__version__ = "0.2.0"

#: The repository root (the folder holding ``notebooks/``, ``data/`` and this package).
REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "__version__"]
