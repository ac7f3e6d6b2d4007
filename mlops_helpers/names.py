"""The course's names in one place: the registered model, the experiments, the aliases and the tags (notebook 01 on).

Every module and every notebook that needs one of these names imports it from here; nothing else defines or
re-exports them. A notebook's parameters cell may repeat a name as a default (``MODEL_NAME = "citybikes-demand"``) so
the learner can change it; a test checks those defaults still equal the names here.
"""

from __future__ import annotations

#: The registered model the whole course trains, serves, monitors and releases.
MODEL_NAME = "citybikes-demand"

#: Notebook 01's experiment: the hand-made runs and the sweep (and the catch-up runs that stand in for them).
EXPERIMENT = "citybikes-demand"
#: Notebook 05's pipeline runs (also the runs of notebook 07's retraining and notebook 09's challengers).
PIPELINE_EXPERIMENT = "citybikes-pipeline"
#: Notebook 08's Kubeflow pipeline runs (a parent run per pipeline run, a child run per step).
KFP_EXPERIMENT = "citybikes-kfp"

#: The aliases the course moves: what serves, what is being tried, and where a rollback goes.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS = "previous-champion"

#: Registered-model tags ``audit.00001``, ``audit.00002``...: one JSON event per alias move (see ``registry``).
AUDIT_TAG_PREFIX = "audit."
#: Version tag naming the pipeline run that registered the version.
PIPELINE_RUN_TAG = "pipeline_run"
#: Run tags of a pipeline run: the batch file, its SHA-256 (for lineage), whether it promoted, and why it ran.
DATA_TAG = "pipeline.data"
DATA_SHA_TAG = "pipeline.data_sha256"
PROMOTED_TAG = "pipeline.promoted"
REASON_TAG = "pipeline.reason"
EXIT_CODE_TAG = "pipeline.exit_code"
#: Tag set on runs and versions a catch-up cell made (never the learner's own work).
CATCHUP_TAG = "catchup"
