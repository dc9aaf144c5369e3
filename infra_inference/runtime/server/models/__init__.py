"""Built-in models: `echo` for tests and benchmarks, `safetensors-mlp` for real weights."""
