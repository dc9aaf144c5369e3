"""The autoscaling simulator, pure: seeded traces (`workload`), a discrete-event replay (`replay`), and the
policies it compares (`policies`). benchmarks/autoscale_replay.py drives it; tests/simulate checks it."""
