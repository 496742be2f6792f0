"""t2i_audit.audits: what share of the images show class c, per group of prompts -- asked of
demographic attributes (``bias``), open attributes (``diversity``), unsafe content (``safety``).

Role packages: ``engine`` (readings -> per-group estimates -> tables, shared by bias, diversity and
safety), ``probes`` (attribute probes as data, their YAML beside them, and calibration), ``labels``
(the labelling page and labels.csv), ``bias``, ``diversity``, ``safety``, ``memorization``.
Methodology: docs/audits.md.
"""
