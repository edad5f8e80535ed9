#!/usr/bin/env bash
# gcloud equivalent of node-pools.tf: GPU node pools (scale from zero, GKE-managed NVIDIA driver,
# nvidia.com/gpu=present:NoSchedule taint, GKE metadata server, shielded nodes) and the Workload
# Identity service account of the pipeline pods.
#
#   PROJECT_ID=my-gcp-project CLUSTER=my-cluster LOCATION=us-central1 BUCKET=my-xdetox-bucket \
#     k8s/gke/create-node-pool.sh [--dry-run]
#
# --dry-run prints the commands instead of running them.
set -euo pipefail

: "${PROJECT_ID:?set PROJECT_ID}" "${CLUSTER:?set CLUSTER}" "${LOCATION:?set LOCATION}"
: "${BUCKET:?set BUCKET (the pipeline root bucket, without gs://)}"
NAMESPACE="${NAMESPACE:-xdetox}"
NODE_SA="xdetox-gpu-nodes@${PROJECT_ID}.iam.gserviceaccount.com"
RUNNER_SA="xdetox-runner@${PROJECT_ID}.iam.gserviceaccount.com"

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then DRY_RUN=1; fi
run() {
  if [[ ${DRY_RUN} -eq 1 ]]; then printf '%q ' "$@"; printf '\n'; else "$@"; fi
}

# Node identity: a minimal service account instead of the Compute Engine default one.
run gcloud iam service-accounts create xdetox-gpu-nodes --project "${PROJECT_ID}" \
  --display-name "xdetox GPU node pools"
for role in roles/logging.logWriter roles/monitoring.metricWriter roles/monitoring.viewer \
            roles/stackdriver.resourceMetadata.writer roles/artifactregistry.reader; do
  run gcloud projects add-iam-policy-binding "${PROJECT_ID}" \
    --member "serviceAccount:${NODE_SA}" --role "${role}" --condition None
done

# name machine-type accelerator-type max-nodes disk-gb
pools=(
  "xdetox-l4 g2-standard-16 nvidia-l4 4 200"
  "xdetox-a100 a2-highgpu-1g nvidia-tesla-a100 2 300"
)
for spec in "${pools[@]}"; do
  read -r name machine gpu max_nodes disk <<<"${spec}"
  run gcloud container node-pools create "${name}" \
    --project "${PROJECT_ID}" --cluster "${CLUSTER}" --location "${LOCATION}" \
    --machine-type "${machine}" \
    --accelerator "type=${gpu},count=1,gpu-driver-version=latest" \
    --node-taints nvidia.com/gpu=present:NoSchedule \
    --node-labels "xdetox.io/pool=${name}" \
    --num-nodes 0 --enable-autoscaling --total-min-nodes 0 --total-max-nodes "${max_nodes}" \
    --location-policy ANY \
    --image-type COS_CONTAINERD --disk-type pd-balanced --disk-size "${disk}" \
    --service-account "${NODE_SA}" \
    --scopes https://www.googleapis.com/auth/cloud-platform \
    --workload-metadata GKE_METADATA \
    --shielded-secure-boot --shielded-integrity-monitoring \
    --enable-autorepair --enable-autoupgrade \
    --metadata disable-legacy-endpoints=true
done

# Workload Identity: KSA <namespace>/xdetox-runner acts as RUNNER_SA, which may use the bucket.
run gcloud iam service-accounts create xdetox-runner --project "${PROJECT_ID}" \
  --display-name "xdetox pipeline runner (Workload Identity)"
run gcloud iam service-accounts add-iam-policy-binding "${RUNNER_SA}" --project "${PROJECT_ID}" \
  --role roles/iam.workloadIdentityUser \
  --member "serviceAccount:${PROJECT_ID}.svc.id.goog[${NAMESPACE}/xdetox-runner]"
run gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
  --member "serviceAccount:${RUNNER_SA}" --role roles/storage.objectUser
