"""Probes: classifiers that read one attribute off an image, as data (the YAML files beside this
module), and their calibration (confusion matrices on labelled images).
"""
