"""``python -m rapidinr``: the same command as the ``rapidinr`` script."""
from rapidinr.cli import entry

if __name__ == "__main__":
    entry()
