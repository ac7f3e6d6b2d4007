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

#: Notebook 11's experiment and registered model: runs of the DVC pipeline, kept apart from the pipeline's model.
DVC_EXPERIMENT = "citybikes-dvc"
DVC_MODEL_NAME = "citybikes-demand-dvc"

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
#: Run tags of a run trained on data versioned with DVC (notebook 11): the Git repository, the commit, the path of
#: the data in it and the hash DVC recorded for it (in ``<path>.dvc`` or ``dvc.lock``) at that commit.
DVC_REPO_TAG = "dvc.repo"
DVC_REV_TAG = "dvc.rev"
DVC_PATH_TAG = "dvc.path"
DVC_MD5_TAG = "dvc.md5"
#: Tag set on runs and versions a catch-up cell made (never the learner's own work).
CATCHUP_TAG = "catchup"

#: The write lease of a registered model (a registered-model tag: who may move its aliases now, until when), and the
#: version tag naming the lease a version was registered under (so a crashed writer's half registration is found).
LEASE_TAG = "registry.lease"
#: Run tags of a pipeline run: the process that runs it, its last sign of life, and what a recovery did with it.
RUN_OWNER_TAG = "pipeline.owner"
RUN_HEARTBEAT_TAG = "pipeline.heartbeat"
RECOVERED_TAG = "pipeline.recovered"
