# The image every component of the Kubeflow pipeline runs in (mlops_helpers.kfp_pipeline.IMAGE, notebook 08):
# the course's pinned environment and the mlops_helpers package, nothing else.
#
# Build and push from the repository root (a Docker engine and a registry the cluster can pull from are needed):
#   docker build -f docker/kfp-component.Dockerfile -t registry.example.com/citybikes-mlops:0.2.0 .
#   docker push registry.example.com/citybikes-mlops:0.2.0
# then set kfp_pipeline.IMAGE to the pushed name and compile the pipeline again.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /opt/citybikes
# Every transitive pin first (its own layer: it changes far less often than the package).
COPY requirements.lock .
RUN pip install -r requirements.lock
# The package, without resolving anything again: requirements.lock already installed its dependencies.
COPY pyproject.toml README.md ./
COPY mlops_helpers ./mlops_helpers
RUN pip install --no-deps . && python -c "import kfp, mlflow, mlops_helpers.kfp_runtime"
