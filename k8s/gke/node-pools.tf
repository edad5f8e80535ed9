# GPU node pools for an existing GKE Standard cluster, plus the Google service account the
# pipeline pods use through Workload Identity.
#
#   terraform init && terraform apply -var project_id=my-gcp-project -var cluster=my-cluster \
#     -var location=us-central1 -var bucket=my-xdetox-bucket
#
# Pools scale from zero: a GPU node exists only while a training or generation task runs.
# GKE installs the NVIDIA driver (gpu_driver_installation_config) and taints every node with
# nvidia.com/gpu=present:NoSchedule, so only pods that tolerate it (the GPU tasks, see
# kfp.kubernetes.add_toleration) land there. create-node-pool.sh does the same with gcloud.

terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}

variable "project_id" {
  description = "Google Cloud project that holds the cluster."
  type        = string
}

variable "location" {
  description = "Cluster location (region or zone); the GPU type must exist in its zones."
  type        = string
}

variable "cluster" {
  description = "Name of the existing GKE Standard cluster (Workload Identity enabled)."
  type        = string
}

variable "bucket" {
  description = "Existing GCS bucket holding the KFP pipeline root (gs://<bucket>/xdetox)."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the pipeline runs (k8s/base/namespace.yaml)."
  type        = string
  default     = "xdetox"
}

variable "gpu_pools" {
  description = "GPU node pools: L4 for generation and small models, A100 for 7-8B DPO."
  type = map(object({
    machine_type = string
    gpu_type     = string
    gpu_count    = number
    max_nodes    = number
    disk_size_gb = number
    spot         = bool
  }))
  default = {
    "xdetox-l4" = {
      machine_type = "g2-standard-16"
      gpu_type     = "nvidia-l4"
      gpu_count    = 1
      max_nodes    = 4
      disk_size_gb = 200
      spot         = false
    }
    "xdetox-a100" = {
      machine_type = "a2-highgpu-1g"
      gpu_type     = "nvidia-tesla-a100"
      gpu_count    = 1
      max_nodes    = 2
      disk_size_gb = 300
      spot         = false
    }
  }
}

# Nodes run as a dedicated, minimal service account instead of the Compute Engine default one.
resource "google_service_account" "gpu_nodes" {
  project      = var.project_id
  account_id   = "xdetox-gpu-nodes"
  display_name = "xdetox GPU node pools"
}

resource "google_project_iam_member" "gpu_nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
    "roles/artifactregistry.reader",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.gpu_nodes.email}"
}

resource "google_container_node_pool" "gpu" {
  for_each = var.gpu_pools

  project  = var.project_id
  location = var.location
  cluster  = var.cluster
  name     = each.key

  # Scale from zero; the cluster autoscaler adds a node when a GPU pod is pending.
  initial_node_count = 0
  autoscaling {
    total_min_node_count = 0
    total_max_node_count = each.value.max_nodes
    location_policy      = "ANY"
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type    = each.value.machine_type
    image_type      = "COS_CONTAINERD"
    disk_type       = "pd-balanced"
    disk_size_gb    = each.value.disk_size_gb
    spot            = each.value.spot
    service_account = google_service_account.gpu_nodes.email
    oauth_scopes    = ["https://www.googleapis.com/auth/cloud-platform"]

    guest_accelerator {
      type  = each.value.gpu_type
      count = each.value.gpu_count
      gpu_driver_installation_config {
        gpu_driver_version = "LATEST"
      }
    }

    # GKE adds this taint to GPU pools itself; declaring it keeps plan and cluster in step.
    taint {
      key    = "nvidia.com/gpu"
      value  = "present"
      effect = "NO_SCHEDULE"
    }

    labels = {
      "xdetox.io/pool" = each.key
    }

    # Pods get Google credentials only through Workload Identity, never the node's identity.
    workload_metadata_config {
      mode = "GKE_METADATA"
    }

    shielded_instance_config {
      enable_secure_boot          = true
      enable_integrity_monitoring = true
    }

    metadata = {
      "disable-legacy-endpoints" = "true"
    }
  }
}

# The Google service account behind the KSA xdetox-runner (k8s/base/serviceaccount.yaml).
resource "google_service_account" "runner" {
  project      = var.project_id
  account_id   = "xdetox-runner"
  display_name = "xdetox pipeline runner (Workload Identity)"
}

# Let the KSA <namespace>/xdetox-runner act as that Google service account.
resource "google_service_account_iam_member" "runner_workload_identity" {
  service_account_id = google_service_account.runner.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.namespace}/xdetox-runner]"
}

# Read and write the pipeline root, and nothing else in the project.
resource "google_storage_bucket_iam_member" "runner_pipeline_root" {
  bucket = var.bucket
  role   = "roles/storage.objectUser"
  member = "serviceAccount:${google_service_account.runner.email}"
}

output "runner_service_account" {
  description = "Put this e-mail in the iam.gke.io/gcp-service-account annotation (overlay)."
  value       = google_service_account.runner.email
}
