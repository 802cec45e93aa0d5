"""Hydra overrides the end-to-end tests share: the tiny model, CSV logs, one probe, few resamples."""

FAST = [
    "model=tiny", "logger=csv", "~probe@probes.judgment", "callbacks.vat.log_images=false",
    "metrics.n_bootstrap=100", "metrics.n_permutations=200", "probes.likelihood.progress=false",
    "~callbacks.progress",
]  # fmt: skip
