#!/usr/bin/env bash
# Build the course's two images and load them into the kind cluster (no registry needed):
#   citybikes-mlops:<version>            the Kubeflow components (docker/kfp-component.Dockerfile), with the data
#   citybikes-serving-runtime:<version>  MLServer with the model's pins (docker/serving-runtime.Dockerfile)
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(.venv/bin/python -c 'import mlops_helpers; print(mlops_helpers.__version__)')
cluster=${KIND_CLUSTER:-mlops-course}

docker build -f docker/kfp-component.Dockerfile -t "citybikes-mlops:${version}-base" .
docker build -f cluster/with-data.Dockerfile --build-arg "BASE=citybikes-mlops:${version}-base" \
  -t "citybikes-mlops:${version}" .
docker build -f docker/serving-runtime.Dockerfile -t "citybikes-serving-runtime:${version}" .
# The images run their own checks from another directory, as on the cluster.
docker run --rm -w / "citybikes-mlops:${version}" python -c \
  'from mlops_helpers import environment; print(environment.model_requirements())'
docker run --rm "citybikes-serving-runtime:${version}" mlserver --version
kind load docker-image --name "$cluster" "citybikes-mlops:${version}" "citybikes-serving-runtime:${version}"
