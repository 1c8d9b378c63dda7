"""rppgedit.video."""
