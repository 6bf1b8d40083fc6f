"""Data side: venue sources (the only ccxt importer), per-metric watchers, the shared runner."""
