"""Training data: the morphable head, synthetic heads, photo-like augmentation, datasets on disk."""
