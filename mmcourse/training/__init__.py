"""Fitting any model: the training loop and checkpoints, batching, metrics and the
fine-tuned model file. Knows nothing of which network it trains."""
