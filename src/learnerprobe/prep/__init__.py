"""Preparation of learner texts: cleaning, masking of give-aways, leakage-free splits, balancing."""
