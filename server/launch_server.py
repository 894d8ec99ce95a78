"""SGLang-compatible entry point: python -m server.launch_server --model-path PATH --is-embedding ..."""

from server.launcher import main

if __name__ == "__main__":
    main()
