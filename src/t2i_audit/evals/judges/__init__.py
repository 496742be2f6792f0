"""Judges: VLM-style yes/no answerers behind one protocol (``base``), their SQLite answer cache and
the concurrent runner. Specs and normalisation: docs/judges.md."""
