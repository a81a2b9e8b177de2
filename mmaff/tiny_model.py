"""`python -m mmaff.tiny_model`: the documented command line, kept; the code is in `mmaff.testing.tiny_model`."""

import runpy

if __name__ == "__main__":
    runpy.run_module("mmaff.testing.tiny_model", run_name="__main__", alter_sys=True)
