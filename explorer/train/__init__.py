"""Training: configs, the trainer, probes, the run store and background jobs."""
