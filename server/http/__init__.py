"""The HTTP side: the FastAPI app, its routes, the one request pipeline, limits, auth, health and metrics."""
