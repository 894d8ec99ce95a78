"""The --attention-backend names, in a module without torch so that flag parsing stays light."""

BACKEND_NAMES = ("auto", "torch_native", "sdpa", "flashinfer")
