"""`python -m mmaff.report`: the documented command line, kept; the code is in `mmaff.eval.report`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.eval.report", run_name="__main__", alter_sys=True)
