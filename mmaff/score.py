"""`python -m mmaff.score`: the documented command line, kept; the code is in `mmaff.eval.score`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.eval.score", run_name="__main__", alter_sys=True)
