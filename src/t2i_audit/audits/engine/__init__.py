"""The attribute-audit engine: bias, diversity and safety ask one question of different attributes --
*what share of the images show class c, per group of prompts, and how sure are we?*

    probe (zero-shot CLIP | oracle | detector | callable)
      -> readings: one label per (image, attribute): class index or abstention    (``readings``)
      -> estimates per group: raw | confusion-corrected | label-calibrated      (``estimate``)
      -> statistics and tables: shares + intervals, vs reference / training     (``tables``)
      -> RUN/audits/<name>.parquet + <name>.json, under the run's lock          (``readings.write_audit``)

Audits are clients: ``audits.bias`` (demographic attributes, amplification vs the training spec,
adherence on explicit prompts) and ``audits.diversity`` (attributes the prompt leaves open).
"""
