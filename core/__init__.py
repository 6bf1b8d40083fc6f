"""Platform-neutral domain: models, Redis keys and stores, command core, rendering helpers."""
