"""`python -m mmaff.generate`: the documented command line, kept; the code is in `mmaff.eval.generate`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.eval.generate", run_name="__main__", alter_sys=True)
