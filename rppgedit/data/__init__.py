"""rppgedit.data."""
