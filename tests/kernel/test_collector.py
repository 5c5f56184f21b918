"""The collector around start-up: paused while the app is built, then past its objects;
the garbage start-up left is freed when the server tunes the collector. Run in a child
process: the collector is process-wide, and test processes are never tuned."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, weakref
from orchestrion.kernel.collector import pause_collector, resume_collector, tune_collector

class Node:
    pass

pause_collector()
assert not gc.isenabled()
cycle = Node(); cycle.me = cycle
dead = weakref.ref(cycle)
del cycle
kept = [Node() for _ in range(1000)]
resume_collector()
assert gc.isenabled()
assert gc.get_freeze_count() >= 1000  # what start-up built is out of the collector's sight
gc.collect()
assert dead() is not None  # frozen: ordinary collections do not walk it
tune_collector()
assert dead() is None  # the one collection at tuning frees start-up's garbage
assert gc.get_freeze_count() >= 1000 and gc.isenabled()
print("ok")
"""


def test_start_up_objects_are_frozen_and_their_garbage_freed_at_tuning() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
