"""`python -m bench.chaos_pg [...]`: the chaos run on PostgreSQL, two instances on one schema.
It lives in testkit/chaos_pg.py, which tests/process/test_chaos.py runs too."""

import sys

from testkit.chaos_pg import main

if __name__ == "__main__":
    sys.exit(main())
