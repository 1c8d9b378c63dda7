"""rppgedit.models."""
