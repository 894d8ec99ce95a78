"""Building blocks shared by the model families (tensor-parallel linears, embeddings, norms)."""
