"""Copies the linear probe, kNN and steps of every method from RESULTS.md into the README's methods table.

  python experiments/benchmarks/readme_table.py           # rewrites README.md in place
  python experiments/benchmarks/readme_table.py --check   # exits 1 and names the rows that differ

RESULTS.md is written by `results_table.py`; the README's methods table has a row per method (name, paper, linear
probe %, kNN-20 %, steps). Only the three number columns of rows whose name is a row of RESULTS.md change; the
names, the papers and the rest of the README are kept. `tests/test_readme.py` checks that the two agree.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COPIED = ("linear probe %", "kNN-20 %", "steps")


def _cells(line: str) -> list[str]:
  return [c.strip() for c in line.strip().strip("|").split("|")]


def _name(cell: str) -> str:
  return cell.replace("`", "").strip()


def results_rows(results_md: str) -> dict[str, dict[str, str]]:
  """{representation: {column: cell}} of the table of RESULTS.md with the `COPIED` columns."""
  lines = results_md.splitlines()
  for i, line in enumerate(lines):
    header = _cells(line) if line.startswith("|") else []
    if "representation" in header and all(c in header for c in COPIED):
      rows = {}
      for row in lines[i + 2:]:
        if not row.startswith("|"):
          break
        cells = _cells(row)
        rows[_name(cells[0])] = dict(zip(header, cells))
      return rows
  raise ValueError(f"RESULTS.md has no table with the columns representation, {', '.join(COPIED)}.")


def sync(readme_md: str, results_md: str) -> tuple[str, list[str]]:
  """(README text with the methods table's numbers taken from RESULTS.md, the names of the rows that changed)."""
  results = results_rows(results_md)
  lines = readme_md.splitlines(keepends=True)
  header, changed = None, []
  for i, line in enumerate(lines):
    if not line.startswith("|"):
      header = None
      continue
    cells = _cells(line)
    if header is None:
      header = cells if cells[:2] == ["method", "paper"] and all(c in cells for c in COPIED) else []
      continue
    if not header or set("".join(cells)) <= set("-: "):
      continue
    name = _name(cells[0])
    if name not in results:
      continue
    new = [results[name][h] if h in COPIED else cell for h, cell in zip(header, cells)]
    if new != cells:
      changed.append(name)
      lines[i] = "| " + " | ".join(new) + " |" + ("\n" if line.endswith("\n") else "")
  return "".join(lines), changed


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the README is out of date")
  args = parser.parse_args(argv)
  readme_path, results_path = os.path.join(ROOT, "README.md"), os.path.join(ROOT, "RESULTS.md")
  with open(readme_path, encoding="utf-8") as f:
    readme = f.read()
  with open(results_path, encoding="utf-8") as f:
    text, changed = sync(readme, f.read())
  if args.check:
    if changed:
      print(f"README.md methods table differs from RESULTS.md in: {', '.join(changed)}")
      sys.exit(1)
    print("README.md methods table equals RESULTS.md")
    return
  with open(readme_path, "w", encoding="utf-8") as f:
    f.write(text)
  print(f"README.md: {len(changed)} rows updated from RESULTS.md" + (f" ({', '.join(changed)})" if changed else ""))


if __name__ == "__main__":
  main()
