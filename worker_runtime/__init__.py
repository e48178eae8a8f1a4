"""Shared worker runtime: one image that hosts any TemporalWorkerPool's workflows and activities."""

__version__ = "0.3.0"
