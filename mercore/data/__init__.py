"""Datasets: the sample type's adapters, the synthetic corpus and frame I/O."""
