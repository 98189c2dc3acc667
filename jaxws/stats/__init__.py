"""Statistics for searches: discovery significance (eqs. 2 and 8), ROC and SIC curves."""
