"""Model loading: remote sources, the node-local cache, and the fast safetensors reader."""
