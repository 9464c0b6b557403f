"""`python -m devstack` (what `make run` runs): the whole local stack in the foreground."""

import sys

from devstack.stack import run_foreground

sys.exit(run_foreground())
