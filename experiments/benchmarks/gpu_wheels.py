"""Installs carried wheels offline and checks that their modules import: the Python half of gpu_wheels.sh (its dry
run) and of gpu_suite.sh (its first part). Standard library only, so it runs before anything is installed.

  python experiments/benchmarks/gpu_wheels.py install .whl /tmp/site --json out/wheels.json   # gpu_suite.sh
  PYTHONPATH=/tmp/site python experiments/benchmarks/gpu_wheels.py check /tmp/site [--bare]     # gpu_wheels.sh

`install` puts into the target folder each wheel whose distribution this Python does not have already (so what the
GPU image has is never shadowed), with `pip install --no-index --no-deps --target` (a wheel is a zip archive of
what --target holds, so without pip it is unpacked), then imports every top-level module of what it installed, with
the target first on the path. `check` imports every top-level module installed in a folder and says where each
came from; `--bare` (a Python without the GPU image's packages) accepts a module that only lacks one of those.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import pathlib
import subprocess
import sys


def top_level_modules(dist_info: pathlib.Path) -> list[str]:
  """The importable top-level modules that an installed distribution's RECORD lists."""
  tops = set()
  for line in (dist_info / "RECORD").read_text(encoding="utf-8").splitlines():
    first = pathlib.PurePosixPath(line.split(",")[0]).parts[0] if line else ""
    if first and not first.endswith((".dist-info", ".data", ".pth")) and first not in ("..", "bin", "__pycache__"):
      tops.add(first[:-3] if first.endswith(".py") else first)
  return sorted(tops)


def _import(module: str, folder: pathlib.Path, bare: bool, ours: set[str]) -> tuple[bool, str]:
  """(ok, what happened) for importing `module`, which must come from `folder`."""
  try:
    imported = importlib.import_module(module)
    where = pathlib.Path(getattr(imported, "__file__", None) or list(imported.__path__)[0]).resolve()
  except ModuleNotFoundError as e:
    missing = (e.name or "?").split(".")[0]
    if bare and missing not in ours:  # a package of the GPU image, absent from a bare interpreter
      return True, f"needs {missing}, which the GPU image has"
    return False, f"ModuleNotFoundError: {e}"
  except Exception as e:  # pylint: disable=broad-except
    return False, f"{type(e).__name__}: {e}"
  if folder not in where.parents:
    return False, f"imported from {where}, not from {folder}"
  compiled = sorted({pathlib.Path(m.__file__).name for m in list(sys.modules.values())
                     if str(getattr(m, "__file__", None) or "").endswith(".so")
                     and where.parent in pathlib.Path(m.__file__).resolve().parents})
  return True, "ok" + (f" (compiled: {', '.join(compiled)})" if compiled else "")


def check(folder: pathlib.Path, *, bare: bool = False, verbose: bool = True) -> list[str]:
  """Imports every top-level module installed in `folder` (which must lead sys.path); returns the failures."""
  folder = folder.resolve()
  if str(folder) not in sys.path:
    sys.path.insert(0, str(folder))
  dists = {info: top_level_modules(info) for info in sorted(folder.glob("*.dist-info"))}
  ours = {m for modules in dists.values() for m in modules}
  failed = []
  for info, modules in dists.items():
    for module in modules:
      ok, what = _import(module, folder, bare, ours)
      if not ok:
        failed.append(module)
      if verbose:
        print(f"  {info.name[:-len('.dist-info')]}: import {module}: {what}", flush=True)
  return failed


def install(wheel_dir: pathlib.Path, target: pathlib.Path) -> dict:
  """Installs into `target` the wheels of `wheel_dir` whose distribution is missing here; returns what it did."""
  wheels = sorted(wheel_dir.glob("*.whl")) if wheel_dir.is_dir() else []
  present, missing = {}, []
  for wheel in wheels:
    name = wheel.name.split("-")[0]
    try:
      present[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      missing.append(wheel)
  target.mkdir(parents=True, exist_ok=True)
  how = "nothing to install"
  if missing:
    if subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, check=False).returncode == 0:
      subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--target",
                      str(target), *map(str, missing)], check=True)
      how = "pip install --no-index --no-deps --target"
    else:
      import zipfile  # pylint: disable=import-outside-toplevel
      for wheel in missing:
        with zipfile.ZipFile(wheel) as archive:
          archive.extractall(target)
      how = "unzipped (no pip)"
  print(f"{len(wheels)} wheels in {wheel_dir}: {len(missing)} to install ({how}), {len(present)} already here: "
        + ", ".join(f"{k} {v}" for k, v in present.items()), flush=True)
  return {"wheels": [w.name for w in wheels], "installed": [w.name for w in missing], "present": present, "how": how,
          "target": str(target), "import_failed": check(target) if missing else []}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  sub = parser.add_subparsers(dest="command", required=True)
  p_install = sub.add_parser("install", help="install the missing wheels offline into a folder")
  p_install.add_argument("wheels", type=pathlib.Path, help="the folder of wheels (.whl/)")
  p_install.add_argument("target", type=pathlib.Path, help="the folder to install into (put it first on PYTHONPATH)")
  p_install.add_argument("--json", default="", help="write the result here")
  p_check = sub.add_parser("check", help="import every top-level module installed in a folder")
  p_check.add_argument("folder", type=pathlib.Path)
  p_check.add_argument("--bare", action="store_true", help="a Python without the GPU image's packages")
  args = parser.parse_args(argv)
  if args.command == "install":
    result = install(args.wheels, args.target)
    if args.json:
      pathlib.Path(args.json).write_text(json.dumps(result, indent=1), encoding="utf-8")
    failed = result["import_failed"]
  else:
    print(f"imports with {sys.executable} (Python {sys.version.split()[0]}{', bare' if args.bare else ''}):")
    failed = check(args.folder, bare=args.bare)
  if failed:
    print(f"{len(failed)} module(s) failed to import: {', '.join(failed)}", flush=True)
  return 1 if failed else 0


if __name__ == "__main__":
  sys.exit(main())
