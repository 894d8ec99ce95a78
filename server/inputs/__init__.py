"""How client inputs become model inputs: prompts and templates, tokenization, images fetched and preprocessed."""
