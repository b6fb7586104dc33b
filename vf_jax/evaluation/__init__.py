"""Evaluation: the metrics and the test-set evaluation."""
