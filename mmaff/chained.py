"""`python -m mmaff.chained`: chained two-step evaluation; the code is in `mmaff.eval.chained`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.eval.chained", run_name="__main__", alter_sys=True)
