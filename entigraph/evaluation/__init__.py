"""Evaluation: question sets, option scoring, statistics, the eval stage (compare) and report.html."""
