"""`python -m mmaff.likelihood`: the documented command line, kept; the code is in `mmaff.eval.likelihood`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.eval.likelihood", run_name="__main__", alter_sys=True)
