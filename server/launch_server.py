"""SGLang-compatible entry point: python -m server.launch_server --model-path PATH --is-embedding ..."""

from server.launch.cli import serve

if __name__ == "__main__":
    serve()
