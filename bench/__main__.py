"""`python -m bench`: run the benchmark in the mode named by BENCH (smoke, default or full)."""

from .run import main

raise SystemExit(main())
