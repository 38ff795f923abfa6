"""Metrics shared by model families."""
