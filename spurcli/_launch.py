"""How every command starts: ``bin/<command>`` is ``launch("spurcli.<command>")``.

pip's console-script wrapper imports ``re`` (about 5 ms) to tidy ``argv[0]`` for Windows; these
launchers are installed instead (``[tool.setuptools] script-files``: pip rewrites ``#!python``
to the installing interpreter). A new command is a copy of ``bin/squeue`` naming its module,
listed in pyproject.toml; tests/unit/test_cli_imports.py checks both and what each imports.

Invariants:
- The exit status and every byte on stdout/stderr are those of ``sys.exit(main())``. Only
  the interpreter's teardown is skipped (``os._exit``), and only when nothing could be lost:
  both streams flushed, no other thread alive, no ``atexit`` hook registered. Otherwise, or
  when ``main`` raises, the ordinary exit runs.
- The garbage collector is off while the command's modules load (they allocate many objects
  and free none); what they built is then frozen out of later collections and the collector
  is back on before ``main`` runs, so a long ``srun`` still collects cycles.
- Imports only ``sys``, ``gc``, ``os``, ``_thread`` and ``atexit`` (all built in or already
  loaded by ``site``).
"""

import gc
import sys


def launch(module: str) -> None:
    """Import ``module``, run its ``main()`` and leave with its status."""
    gc.disable()
    main = __import__(module, fromlist=["main"]).main
    gc.freeze()
    gc.enable()
    status = main()
    _exit(status)


def _exit(status: object) -> None:
    """``sys.exit(status)``, without the teardown when that changes nothing but the time."""
    if (status is None or type(status) is int) and _nothing_left_to_do():
        import os

        os._exit(status or 0)
    sys.exit(status)


def _nothing_left_to_do() -> bool:
    """True when the normal exit would only free memory: output flushed, no thread to wait
    for, no atexit hook to run."""
    import _thread
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe: let the interpreter report it as it always does
        return False
    count = getattr(atexit, "_ncallbacks", None)
    return _thread._count() == 0 and count is not None and count() == 0
