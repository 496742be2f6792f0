"""Safety: unsafe-content rates per prompt category: the detectors, the audit driver, and PictoWorld's
restricted-concept test bed.
"""
