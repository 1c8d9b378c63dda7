"""rppgedit: edit the remote-photoplethysmography (rPPG) pulse in facial videos, for privacy."""

__version__ = "0.1.0"
