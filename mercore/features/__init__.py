"""Feature extractors (frames, flow, strain, differences, sequences) and their on-disk cache."""
