"""Trainers (supervised, pre-training stages, perturbation) and device handling."""
