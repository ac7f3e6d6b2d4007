# The image every component of the Kubeflow pipeline runs in (mlops_helpers.kfp_pipeline.IMAGE, notebook 08):
# the course's pinned environment and the mlops_helpers package, nothing else.
#
# Build and push from the repository root (a Docker engine and a registry the cluster can pull from are needed):
#   docker build -f docker/kfp-component.Dockerfile -t registry.example.com/citybikes-mlops:0.2.0 .
#   docker push registry.example.com/citybikes-mlops:0.2.0
# then set kfp_pipeline.IMAGE to the pushed name and compile the pipeline again (cluster/README.md does it on kind).
#
# The package is installed as a wheel and its sources are deleted: a component runs the *installed* package from
# whatever directory KFP starts it in, never a source tree that happens to be its working directory. What a logged
# model needs ships inside the package (mlops_helpers/model-requirements.txt), so no requirements.lock is needed at
# run time. `make image-venv` builds the same environment without Docker, and tests/test_environment.py checks the
# installed package from another directory.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COURSE_WORKSPACE=/tmp/citybikes-workspace

# Every transitive pin first (its own layer: it changes far less often than the package).
COPY requirements.lock /tmp/build/requirements.lock
RUN pip install -r /tmp/build/requirements.lock
# The package, without resolving anything again: requirements.lock already installed its dependencies.
COPY pyproject.toml README.md /tmp/build/
COPY mlops_helpers /tmp/build/mlops_helpers
RUN pip install --no-deps /tmp/build && rm -rf /tmp/build
WORKDIR /tmp
# Fails the build if the installed package cannot find what it needs from an arbitrary directory.
RUN cd / && python -c "import kfp, mlflow, mlops_helpers.kfp_runtime; from mlops_helpers import environment; print(environment.model_requirements())"
