"""Statistics, in one torch-free package (numpy/scipy only; `reports` imports it).

- `resampling`: cluster bootstrap of means and proportions, percentile/basic/centred intervals, and
  the package's one Wilson interval (`wilson_interval`).
- `proportions`: differences of proportions, the one paired cluster bootstrap
  (`paired_cluster_bootstrap`) and exact McNemar test (`mcnemar_exact`).
- `distribution`: statistics of class distributions (parity gap, entropy, TV, KL), goodness-of-fit
  tests and multiple-testing adjustment (Holm, Benjamini-Hochberg).
- `correction`: estimators of probe-read class shares corrected by a confusion matrix.
- `power`: power and sample-size planning for audits.
- `shift`: does a calibration set match the audited images? (MMD² + KS, Bonferroni).
"""
