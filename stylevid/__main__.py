"""`python -m stylevid` is the `stylevid` command."""

from stylevid.cli import console

raise SystemExit(console())
