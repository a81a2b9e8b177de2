"""`python -m mmaff.build`: the documented command line, kept; the code is in `mmaff.data.build`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.data.build", run_name="__main__", alter_sys=True)
