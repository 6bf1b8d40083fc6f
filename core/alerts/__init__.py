"""Alerts: rules, their evaluation, the alert stream and delivery bookkeeping (platform-neutral)."""
