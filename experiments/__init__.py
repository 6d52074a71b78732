"""Thin entry-point scripts for the MLproject; all logic lives in posterml/."""
