"""Labels: a stratified sample of a run's images, the self-contained labelling page, labels.csv I/O.
The engine combines labels with a probe's readings (PPI++).
"""
