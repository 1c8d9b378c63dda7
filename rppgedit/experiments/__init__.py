"""rppgedit.experiments."""
