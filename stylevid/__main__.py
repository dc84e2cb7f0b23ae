"""`python -m stylevid` is the `stylevid` command."""

from stylevid.cli import main

raise SystemExit(main())
