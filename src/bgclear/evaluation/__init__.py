"""Evaluation against ground-truth alpha mattes."""
