"""Test-suite wide setup."""

# Import hypothesis at collection time, not first at the session's end: its pytest plugin
# imports it in pytest_terminal_summary, deep in pluggy's stack, where CPython 3.11.7's
# compile() can fail with "AST constructor recursion depth mismatch" (gh-106905) when only
# tests that never imported it ran.
import os

import hypothesis

# One profile for the whole suite: no per-example deadline (two cores shared with live
# clusters make wall-clock deadlines flaky); SPUR_HYPOTHESIS_PROFILE=long for deep runs.
hypothesis.settings.register_profile("ci", max_examples=150, deadline=None)
hypothesis.settings.register_profile("long", max_examples=3000, deadline=None)
hypothesis.settings.load_profile(os.environ.get("SPUR_HYPOTHESIS_PROFILE", "ci"))
