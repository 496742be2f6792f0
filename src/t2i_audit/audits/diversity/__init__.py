"""Diversity: attributes the prompts leave open, vs training, and feature-space diversity
(precision/recall, density/coverage, Vendi).
"""
