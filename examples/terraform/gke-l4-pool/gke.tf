# The GKE node pool, from the settings: machine type, GPU and its sharing, labels and taints.
locals {
  gke = data.infra_inference_gpu_pool_settings.l4.gke
}

resource "google_container_node_pool" "l4" {
  name           = data.infra_inference_gpu_pool_settings.l4.name
  cluster        = var.cluster
  location       = var.region
  node_locations = local.gke.node_locations

  autoscaling {
    total_min_node_count = local.gke.total_min_node_count
    total_max_node_count = local.gke.total_max_node_count
    location_policy      = local.gke.location_policy
  }

  management {
    auto_repair  = true
    auto_upgrade = true
  }

  node_config {
    machine_type = data.infra_inference_gpu_pool_settings.l4.machine_type
    spot         = data.infra_inference_gpu_pool_settings.l4.spot
    labels       = data.infra_inference_gpu_pool_settings.l4.labels
    oauth_scopes = local.gke.oauth_scopes

    workload_metadata_config {
      mode = local.gke.workload_metadata_mode
    }

    dynamic "taint" {
      for_each = data.infra_inference_gpu_pool_settings.l4.taints
      content {
        key    = taint.value.key
        value  = taint.value.value
        effect = taint.value.effect
      }
    }

    guest_accelerator {
      type               = local.gke.accelerator_type
      count              = local.gke.accelerator_count
      gpu_partition_size = local.gke.gpu_partition_size

      gpu_driver_installation_config {
        gpu_driver_version = local.gke.gpu_driver_version
      }

      dynamic "gpu_sharing_config" {
        for_each = local.gke.gpu_sharing_strategy == null ? [] : [1]
        content {
          gpu_sharing_strategy       = local.gke.gpu_sharing_strategy
          max_shared_clients_per_gpu = local.gke.max_shared_clients_per_gpu
        }
      }
    }

    dynamic "gcfs_config" {
      for_each = local.gke.image_streaming ? [1] : []
      content {
        enabled = true
      }
    }
  }
}
