# The serving runtime of the course's releases on a cluster (mlops_helpers.manifests.RUNTIME_IMAGE): MLServer 1.7.1
# and its MLflow runtime, with the model's own pinned requirements. KServe's kserve-mlserver runtime and Seldon
# Core 2's mlserver servers run MLServer too, but their image pins mlflow 2.19 and scikit-learn 1.5.2, which cannot
# read the course's models ("Unrecognized serialization format: skops"); the manifests name this image instead.
#
# Build and push from the repository root (a Docker engine and a registry the cluster can pull from are needed):
#   docker build -f docker/serving-runtime.Dockerfile -t registry.example.com/citybikes-serving-runtime:0.2.0 .
#   docker push registry.example.com/citybikes-serving-runtime:0.2.0
# and pass image= to manifests.kserve_manifests / seldon_server (cluster/README.md does it on kind).
#
# `make runtime-proof` installs the same lock into a throw-away venv and loads the champion with this image's
# command, from another directory, as KServe and as Seldon start it (scripts/serving_runtime.py).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLSERVER_MODELS_DIR=/mnt/models

COPY docker/serving-runtime.lock /tmp/build/serving-runtime.lock
RUN pip install -r /tmp/build/serving-runtime.lock && rm -rf /tmp/build \
    && useradd --uid 1000 --create-home mlserver
USER 1000
WORKDIR /home/mlserver
# KServe's storage initializer (and Seldon's agent) put the model under /mnt/models; MLServer reads it from there.
CMD ["sh", "-c", "exec mlserver start \"$MLSERVER_MODELS_DIR\""]
