"""Composition root: CLI, settings, wiring, process lifecycle."""
