"""Click command groups, one module per area; cli.py registers them."""
