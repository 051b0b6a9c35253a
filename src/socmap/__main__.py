"""``python -m socmap`` runs the CLI."""

from socmap.cli import main

if __name__ == "__main__":
    main()
