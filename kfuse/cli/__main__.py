"""`python -m kfuse.cli ...` is `kfuse ...`."""

import sys

from kfuse.cli import main

sys.exit(main())
