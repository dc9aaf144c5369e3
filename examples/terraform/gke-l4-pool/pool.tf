# The pool, declared once: the settings data source computes the GKE node pool from it (the same
# code as the Pulumi GpuPool's GKE branch), and infra_inference_gpu_pool gives services its slots.
locals {
  pool = {
    name            = "l4"
    zones           = ["${var.region}-a", "${var.region}-b"]
    gpu_type        = "l4"
    max_nodes       = 3
    spot            = true
    image_streaming = true
    # Four slots per GPU: a 0.25-GPU replica takes exactly one.
    sharing = { strategy = "time-slicing", replicas_per_gpu = 4 }
  }
}

data "infra_inference_gpu_pool_settings" "l4" {
  name            = local.pool.name
  cloud           = "gke"
  location        = var.region
  zones           = local.pool.zones
  gpu_type        = local.pool.gpu_type
  max_nodes       = local.pool.max_nodes
  spot            = local.pool.spot
  image_streaming = local.pool.image_streaming
  sharing         = local.pool.sharing
}

resource "infra_inference_gpu_pool" "l4" {
  name            = local.pool.name
  cloud           = "gke"
  cluster         = var.cluster
  location        = var.region
  zones           = local.pool.zones
  gpu_type        = local.pool.gpu_type
  max_nodes       = local.pool.max_nodes
  spot            = local.pool.spot
  image_streaming = local.pool.image_streaming
  sharing         = local.pool.sharing
}
