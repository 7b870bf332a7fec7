"""Comparison statistics: paired bootstrap intervals and exact tests, candidate against baseline."""
