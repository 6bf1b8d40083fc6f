"""Console chat: the same commands as in Telegram, typed in a terminal."""
