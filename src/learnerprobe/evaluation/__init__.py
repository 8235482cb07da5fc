"""Evaluation shared by both tasks (the study core and NLI): result tables and scoring."""
