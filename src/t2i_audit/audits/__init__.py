"""t2i_audit.audits: bias audits with classifier-error correction, memorization, planning.

Modules: ``probes`` (attribute probes as data: zero-shot CLIP, PictoWorld oracle, any callable),
``calibration`` (confusion matrices on labelled images), ``correction`` (simplex-constrained
correction and the two-sample bootstrap), ``bias_stats`` (statistics and multiple testing),
``tables`` (result rows), ``bias`` (the audit driver), ``planning`` (sample sizes and simulated
power), ``memorization`` (near-copy search). Methodology: docs/audits.md.
"""
