#!/usr/bin/python3
"""Runs gcovr with its command line, with one fix for Debian 12's gcovr 5.2 (used by
scripts/coverage).

gcovr 5.2 keys a file's functions by name alone and asserts that two records of one name have one
line (gcovr/merging.py, merge_function). cancelkit's headers define some functions once per
configuration (detail/sync.hpp under CANCELKIT_PERTURBATION, CANCELKIT_PORTABLE_WAIT,
CANCELKIT_SYNC_RELACY), at different lines, and the suites compile several configurations, so
merging them fails with an AssertionError (and with -j N, gcovr then hangs). Keyed by name and
line, each definition keeps its own record and execution count. Another gcovr version runs
unchanged.
"""

import sys

try:
    import gcovr.merging as merging

    if hasattr(merging, "_insert_coverage_item") and hasattr(merging, "DEFAULT_MERGE_OPTIONS"):

        def insert_function_coverage(target, function, options=merging.DEFAULT_MERGE_OPTIONS):
            return merging._insert_coverage_item(  # pylint: disable=protected-access
                target.functions, f"{function.name}@{function.lineno}", function,
                merging.merge_function, options)

        # Before gcovr's other modules import the name (from .merging import ...).
        merging.insert_function_coverage = insert_function_coverage
    from gcovr.__main__ import main
except ImportError as e:
    print(f"gcovr_compat: cannot import gcovr ({e}); Debian: apt-get install gcovr", file=sys.stderr)
    sys.exit(2)

sys.exit(main())
