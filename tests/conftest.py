"""Test-suite wide setup."""

# Import hypothesis at collection time, not first at the session's end: its pytest plugin
# imports it in pytest_terminal_summary, deep in pluggy's stack, where CPython 3.11.7's
# compile() can fail with "AST constructor recursion depth mismatch" (gh-106905) when only
# tests that never imported it ran.
import hypothesis  # noqa: F401
