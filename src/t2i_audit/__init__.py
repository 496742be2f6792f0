"""t2i-audit: audit text-to-image checkpoints for quality and social bias."""

__version__ = "0.1.0"
