#!/usr/bin/env bash
# Install on the current kubectl context: KServe (serverless mode: Knative, Istio, cert-manager), Kubeflow Pipelines,
# Prometheus, and the MLflow server on PostgreSQL with MinIO (cluster/mlflow.yaml). Needs kubectl, helm and curl,
# and the internet (the hosted runner of .github/workflows/cluster.yml has them); about 15 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
KSERVE_VERSION=${KSERVE_VERSION:-v0.16.0}
KFP_VERSION=${KFP_VERSION:-2.14.3}
NAMESPACE=mlops-course

echo "--- KServe ${KSERVE_VERSION} with Knative, Istio and cert-manager (KServe's own quick install)"
curl -fsSL "https://raw.githubusercontent.com/kserve/kserve/${KSERVE_VERSION}/hack/quick_install.sh" \
  -o /tmp/kserve-quick-install.sh
bash /tmp/kserve-quick-install.sh
kubectl get clusterservingruntime kserve-mlserver

echo "--- Kubeflow Pipelines ${KFP_VERSION} (standalone, platform-agnostic)"
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/cluster-scoped-resources?ref=${KFP_VERSION}"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
kubectl apply -k "github.com/kubeflow/pipelines/manifests/kustomize/env/platform-agnostic?ref=${KFP_VERSION}"
kubectl -n kubeflow wait --for=condition=Available deployment --all --timeout=20m

echo "--- Prometheus (scrapes pods annotated prometheus.io/scrape)"
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts
helm upgrade --install prometheus prometheus-community/prometheus --namespace monitoring --create-namespace \
  --set alertmanager.enabled=false --set prometheus-pushgateway.enabled=false --wait --timeout 10m

echo "--- MLflow on PostgreSQL, artifacts and models in MinIO"
kubectl apply -f cluster/mlflow.yaml
kubectl -n "$NAMESPACE" wait --for=condition=Available deployment/postgres deployment/minio --timeout=10m
kubectl -n "$NAMESPACE" run make-buckets --rm -i --restart=Never --image=minio/mc:RELEASE.2025-04-16T18-13-26Z \
  --env=MC_HOST_local=http://mlops-course:kind-only-minio@minio:9000 -- \
  mb --ignore-existing local/mlflow-artifacts local/mlops-course-models
kubectl -n "$NAMESPACE" wait --for=condition=Available deployment/mlflow --timeout=15m
