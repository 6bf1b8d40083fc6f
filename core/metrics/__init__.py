"""Metrics: one module per kind of market data (funding, basis, open interest, exchange flows).

``base.Metric`` says what a metric declares; ``registry.Registry`` is what the command table, rule
grammar, subscription topics, Discord options and config sections are built from.
"""
