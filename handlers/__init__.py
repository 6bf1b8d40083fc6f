"""Chat adapters, one package per platform: bind commands, render replies, send."""
