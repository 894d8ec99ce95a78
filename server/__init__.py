"""The HTTP frontend, CLI, launcher and tokenization side of embedserve."""
