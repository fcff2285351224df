"""Evaluation: the one instrument (``a3d eval``) for photos, the synthetic held-out heads and datasets."""
