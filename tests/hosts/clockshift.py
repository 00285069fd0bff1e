"""Run a Python module with its wall clock shifted: ``python clockshift.py MODULE ARGS...``.

A time jump on one host, simulated: every namespace shares the kernel's CLOCK_REALTIME,
which can be changed only for the whole machine (time namespaces offset only the monotonic
and boot clocks), and libfaketime 0.9.10 makes Python's ``time.sleep`` fail with EINVAL
unless it fakes CLOCK_MONOTONIC too (which a real jump never moves). So this shifts
``time.time()``/``time.time_ns()`` in this process only, by the number of seconds in
``$SPUR_CLOCK_FILE`` (re-read at most every 50 ms): what Spur's code reads as "now" (op
timestamps, time limits, purges, ``at``) jumps; monotonic clocks, the kernel's view (TLS
validity checks in OpenSSL, file times) and child processes (jobs) do not.
"""

import os
import runpy
import sys
import time

_real_time, _real_time_ns, _mono = time.time, time.time_ns, time.monotonic
_path = os.environ.get("SPUR_CLOCK_FILE", "")
_cache = [0.0, -1.0]  # offset, monotonic time read


def _offset() -> float:
    now = _mono()
    if now - _cache[1] > 0.05:
        _cache[1] = now
        try:
            with open(_path) as f:
                _cache[0] = float(f.read().strip() or 0)
        except (OSError, ValueError):
            pass
    return _cache[0]


time.time = lambda: _real_time() + _offset()
time.time_ns = lambda: _real_time_ns() + int(_offset() * 1e9)

if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
