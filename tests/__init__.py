"""The test suite. `xla_flags` gives the XLA flags of the suite (tests/conftest.py) for a child process."""
import os

# XLA:CPU compiles the suite's programs at LLVM -O0. The suite runs thousands of small programs on tiny arrays, so
# compilation, not execution, is most of its time: this cuts a method file's time by about a third. The arithmetic
# is the same IEEE float32 either way (the golden per-step metrics of tests/methods/smoke_losses.json, recorded at
# the default level, agree within their tolerance); only the machine code is less optimised.
SUITE_XLA_FLAGS = ("--xla_backend_optimization_level=0",)


def xla_flags(devices: int) -> str:
  """`--xla_force_host_platform_device_count=<devices>` and the suite's other XLA flags, for a child process's
  `XLA_FLAGS`: a child that trains part of a run must compile like the test process that trains the rest."""
  rest = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(
      "--xla_force_host_platform_device_count")]
  for flag in SUITE_XLA_FLAGS:
    if not any(f.split("=")[0] == flag.split("=")[0] for f in rest):
      rest.append(flag)
  return " ".join([f"--xla_force_host_platform_device_count={devices}", *rest])
