"""Bias: demographic attributes under neutral prompts, per group, vs reference and training.
The audit driver (``bias_audit``) on the attribute-audit engine.
"""
