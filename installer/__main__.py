"""`python3 -m installer` and the zipapp entry point."""

import sys

from installer.cli import main

if __name__ == "__main__":
    sys.exit(main())
