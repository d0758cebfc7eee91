"""`python -m kfuse.cli ...` is `kfuse ...`."""

import sys

from kfuse.cli import main

if __name__ == "__main__":
    sys.exit(main())
