"""Pruning: importance scores, the trimming schedule, and removing Gaussians from parameters and optimizers."""
