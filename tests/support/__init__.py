"""Helpers shared by the tests: launching real servers, fixture models, texts and vector comparison."""
