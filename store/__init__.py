"""All Redis state of the service: jobs, results, the model registry, training jobs, datasets,
worker liveness and the shared metrics counters. Torch-free, and importing nothing of `api/` or
`worker/` (only `core.settings` and redis), so both sides can use it. The key layout lives in
one module (`store.keys`), the atomic state changes in `store/lua/*.lua`. See docs/DESIGN.md.
"""
