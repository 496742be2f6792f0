"""Question-based alignment: questions, judges' answers, scores and their label calibration.

See docs/alignment.md. Modules: ``questions`` (the Question record, PictoWorld scene graphs, the
question file), ``formats`` (benchmark files the user has), ``oracle_judge`` / ``bundled_judge``
(PictoWorld judges), ``scores`` (VQAScore, TIFA, DSG, Soft-TIFA), ``calibrate`` (labels and PPI++
per question type), ``validate`` (meta-evaluation against human ratings), ``pipeline`` (RUN/alignment),
``results`` (the rows compare and gate read).
"""
