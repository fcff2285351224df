"""Training: the recipe (TrainConfig), where batches come from, the loss, checkpoints, the loop.

``python -m a3d.train`` is ``a3d train``."""
