resource "infra_inference_platform" "platform" {
  namespace = "inference"
}

resource "infra_inference_service" "chat" {
  name         = "chat"
  namespace    = infra_inference_platform.platform.namespace
  pool         = infra_inference_gpu_pool.l4.ref
  gpu_fraction = 0.25
  zones_spread = true
  model = {
    uri  = "gs://my-models/chat.safetensors"
    name = "chat"
  }
  autoscale = {
    min_replicas          = 0
    max_replicas          = 12
    scale_to_zero_after_s = 600
  }
  # Replicas need the nodes; the nodes need nothing of ours.
  depends_on = [google_container_node_pool.l4]
}

output "url" {
  value = infra_inference_service.chat.url
}
