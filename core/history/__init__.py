"""History: replaying stored or recorded samples through the live evaluation path."""
