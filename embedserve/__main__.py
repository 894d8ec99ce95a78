"""`python -m embedserve ...`: the `embedserve` console command."""

from embedserve.cli import main

if __name__ == "__main__":
    main()
