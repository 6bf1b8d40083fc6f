"""Telegram front end (python-telegram-bot)."""

import os

# PTB 22 reports RetryAfter.retry_after as a timedelta when this is set, and warns about the
# int form otherwise; the push consumer reads timedeltas.
os.environ.setdefault("PTB_TIMEDELTA", "1")
