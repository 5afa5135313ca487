"""`python -m bench.chaos [--engine postgres] [...]`: the chaos run. It lives in testkit/chaos.py
(and testkit/chaos_pg.py, the same on PostgreSQL), which tests/process/test_chaos.py runs too;
`--help` lists its options."""

import sys

from testkit.chaos import main

if __name__ == "__main__":
    sys.exit(main())
