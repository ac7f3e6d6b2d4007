#!/usr/bin/env bash
# The course's pipeline and release on the cluster install.sh prepared: run the training pipeline on Kubeflow
# Pipelines (its steps log to the cluster's MLflow), stage the champion into MinIO, release it with KServe, and check
# that the cluster answers what the registry's model predicts. Services are reached through port-forwards on
# 127.0.0.1, stopped by PID when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
NAMESPACE=mlops-course
WORK=workspace/cluster
mkdir -p "$WORK"

pids=()
stop_forwards() {
  if ((${#pids[@]})); then kill "${pids[@]}" 2>/dev/null || true; fi
}
trap stop_forwards EXIT
forward() {  # namespace service local-port remote-port
  kubectl -n "$1" port-forward --address 127.0.0.1 "svc/$2" "$3:$4" >"$WORK/forward-$2.log" 2>&1 &
  pids+=("$!")
}
forward kubeflow ml-pipeline 8888 8888
forward "$NAMESPACE" mlflow 5000 5000
forward "$NAMESPACE" minio 9000 9000
forward istio-system istio-ingressgateway 8080 80
for port in 8888 5000 9000 8080; do
  timeout 60 bash -c "until (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 1; done"
done
export MLFLOW_TRACKING_URI=http://127.0.0.1:5000 MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
export AWS_ACCESS_KEY_ID=mlops-course AWS_SECRET_ACCESS_KEY=kind-only-minio AWS_DEFAULT_REGION=us-east-1

echo "--- the training pipeline on Kubeflow Pipelines"
version=$("$PY" cluster/release.py pipeline --kfp http://127.0.0.1:8888 \
  --tracking-uri http://mlflow.mlops-course.svc.cluster.local:5000 \
  --data-uri /opt/citybikes/data/Bikeshare.csv | tail -n 1)
echo "champion: version ${version}"

echo "--- the champion in the object store, as KServe reads it"
"$PY" cluster/release.py stage --version "$version" --dest "$WORK/storage/$version"
aws --endpoint-url http://127.0.0.1:9000 s3 cp --recursive "$WORK/storage/$version" \
  "s3://mlops-course-models/citybikes-demand/$version"

echo "--- the release: a KServe InferenceService on the course's serving runtime"
"$PY" cluster/release.py manifests --version "$version" --out "$WORK/manifests"
kubectl apply -f "$WORK/manifests/inferenceservice.yaml"
kubectl -n "$NAMESPACE" wait --for=condition=Ready inferenceservice/citybikes-demand --timeout=15m
host=$(kubectl -n "$NAMESPACE" get inferenceservice citybikes-demand -o jsonpath='{.status.url}')
"$PY" cluster/release.py check --ingress http://127.0.0.1:8080 --host "${host#http://}" --version "$version"
