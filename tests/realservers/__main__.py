"""Start the lab by hand, for poking at it: ``sudo .venv/bin/python -m tests.realservers``.

Prints the environment that points ``dcv`` at the lab (``eval`` it in another shell), keeps the lab
running until Ctrl-C, and leaves every daemon's config and log under the printed directory.
"""

from __future__ import annotations

import os
import signal
import sys

from .lab import Lab


def main() -> int:
    os.environ["DCV_LAB_KEEP"] = "1"
    lab = Lab().start()
    try:
        print(f"# lab up in {lab.startup_seconds:.1f}s; configs and logs in {lab.root}", flush=True)
        for key, value in lab.env().items():
            if key.startswith("DCV_") or key == "PYTHONPATH":
                print(f"export {key}='{value}'", flush=True)
        print("# e.g.: python -m bot dns ok.example.lab v-ok   (Ctrl-C here stops the lab)", flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
