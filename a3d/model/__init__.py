"""The network: its configuration and presets, layers, weights on disk, int8 storage, model card."""
