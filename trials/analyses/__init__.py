"""Analyses of a trial: the unblinding that releases arm-level results, the analysis datasets
loaded from the trial's records, and the analysis-results dataset."""
