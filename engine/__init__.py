"""Model execution: configs, weights, layers, attention backends, models, pooling, batching."""
