"""Model families, one file each, registered by HF architecture name in registry.py."""
