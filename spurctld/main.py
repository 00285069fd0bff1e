"""``spurctld --config FILE --id N``: run one controller replica in the foreground.

SIGTERM/SIGINT stop it cleanly: servers closed, pysyncobj stopped, WAL synced and closed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from spurcore.snapshot import tune_gc
from spurctld.service import Controller
from spurctld.wal import WalError
from spurio.config import ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spurctld", description="Spur controller replica")
    parser.add_argument("--config", "-f", required=True, help="path to spur.toml")
    parser.add_argument("--id", type=int, required=True, help="this replica's id in spur.toml")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper(), logging.INFO),
        format="%(asctime)s spurctld[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    tune_gc()
    try:
        config = load(args.config)
        config.replica(args.id)
    except ConfigError as exc:
        print(f"spurctld: error: {exc}", file=sys.stderr)
        return 1

    async def run() -> None:
        controller = Controller(config, args.id)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await controller.start()
        try:
            await stop.wait()
        finally:
            await controller.stop()

    try:
        asyncio.run(run())
    except (WalError, ConfigError) as exc:
        print(f"spurctld: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"spurctld: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
