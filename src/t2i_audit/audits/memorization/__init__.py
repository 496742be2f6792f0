"""Memorization: nearest training neighbours of generated images and near-copy detection.
One audit driver (``memorization_audit``).
"""
