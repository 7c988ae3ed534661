"""docs/seeds.md stays true: one row per seed paper in the seed file's order, names that resolve, nothing left out.

- Every title of `../shared/seed-abstracts.txt` (odd lines; the even lines are the abstracts) has exactly one row of
  the seeds table, in the file's order, and the table has no other rows.
- Every status is one of the four the document defines, and the counts its opening paragraph states equal the
  counts of the status column.
- Every backticked dotted name that starts with `rl.` resolves: the longest importable module prefix is imported
  and the rest is read with getattr.
- Every public loss (`rl.losses.__all__`, as `rl.losses.<name>` or `rl.losses.<module>.<name>`) and every
  registered method (`rl.methods.METHODS`, as `rl.methods.<name>`) is named somewhere in the document.

No training and no network: it reads two text files and imports `rl`.
"""
from __future__ import annotations

import importlib
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "seeds.md")
SEEDS = os.path.join(ROOT, "..", "shared", "seed-abstracts.txt")
STATUSES = ("covered", "partly covered", "missing", "no objective of its own")
NAME = re.compile(r"`(rl(?:\.\w+)+)`")


def _doc() -> str:
  with open(DOC, encoding="utf-8") as f:
    return f.read()


def _seed_titles() -> list[str]:
  if not os.path.exists(SEEDS):
    pytest.skip(f"the seed file {os.path.normpath(SEEDS)} is absent (it ships beside the repository, in ../shared)")
  with open(SEEDS, encoding="utf-8") as f:
    lines = f.read().splitlines()
  while lines and not lines[-1].strip():
    lines.pop()
  assert len(lines) % 2 == 0, f"{SEEDS}: expected alternating title and abstract lines, got {len(lines)} lines"
  return [t.strip() for t in lines[0::2]]


def _seeds_table(text: str) -> tuple[list[str], list[list[str]]]:
  """The header and rows (cells stripped) of the table whose header has `title` and `status`."""
  tables, block = [], []
  for line in text.splitlines() + [""]:
    if line.startswith("|"):
      block.append([c.strip() for c in line.strip().strip("|").split("|")])
    elif block:
      if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
        tables.append((block[0], block[2:]))
      block = []
  found = [t for t in tables if "title" in t[0] and "status" in t[0]]
  assert len(found) == 1, f"docs/seeds.md: expected one table with 'title' and 'status' columns, found {len(found)}"
  header, rows = found[0]
  for r in rows:
    assert len(r) == len(header), f"docs/seeds.md: row {r[:2]} has {len(r)} cells, the header {len(header)}"
  return header, rows


def _column(name: str) -> list[str]:
  header, rows = _seeds_table(_doc())
  i = header.index(name)
  return [r[i] for r in rows]


def _resolve(dotted: str):
  """Import the longest importable module prefix of `dotted`, then getattr the rest; raise if either fails."""
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:cut]))
    except ModuleNotFoundError as e:
      if e.name is None or not ".".join(parts[:cut]).startswith(e.name):
        raise  # the module exists but an import inside it failed: that is a real error
      continue
    for attr in parts[cut:]:
      obj = getattr(obj, attr)  # AttributeError names the missing part
    return obj
  raise ModuleNotFoundError(dotted)


def test_one_row_per_seed_title_in_the_files_order():
  titles = _seed_titles()
  rows = _column("title")
  missing = [t for t in titles if rows.count(t) == 0]
  repeated = sorted({t for t in rows if rows.count(t) > 1})
  extra = [t for t in rows if t not in titles]
  assert not missing, f"docs/seeds.md has no row for {len(missing)} seed titles, first {missing[:3]}"
  assert not repeated, f"docs/seeds.md has more than one row for {repeated}"
  assert not extra, f"docs/seeds.md has rows that are not seed titles: {extra[:3]}"
  assert rows == titles, next(f"row {i + 1} is {r!r}, the seed file's title {i + 1} is {t!r}"
                              for i, (r, t) in enumerate(zip(rows, titles)) if r != t)


def test_statuses_are_known_and_the_stated_counts_are_the_real_ones():
  text = _doc()
  statuses = [s.replace("`", "").strip() for s in _column("status")]
  unknown = sorted(set(statuses) - set(STATUSES))
  assert not unknown, f"docs/seeds.md: unknown status {unknown}; use one of {STATUSES}"
  intro = text[:text.index("\n|")]
  stated = re.findall(r"(\d+) `(covered|partly covered|missing|no objective of its own)`", intro)
  stated_by = {}
  for n, s in stated:
    assert s not in stated_by, f"docs/seeds.md: the opening paragraph states the count of {s!r} twice"
    stated_by[s] = int(n)
  real = {s: statuses.count(s) for s in STATUSES}
  assert stated_by == real, f"docs/seeds.md: the opening paragraph says {stated_by}, the status column has {real}"


def test_every_rl_name_resolves():
  names = sorted(set(NAME.findall(_doc())))
  assert names, "docs/seeds.md names nothing in rl"
  broken = []
  for name in names:
    try:
      _resolve(name)
    except (ImportError, AttributeError) as e:
      broken.append(f"{name} ({type(e).__name__}: {e})")
  assert not broken, "docs/seeds.md names what does not exist: " + "; ".join(broken)


def test_every_public_loss_and_method_is_named():
  from rl import losses, methods
  names = set(NAME.findall(_doc()))
  absent = []
  for n in losses.__all__:
    module = getattr(getattr(losses, n), "__module__", "")
    if f"rl.losses.{n}" not in names and f"{module}.{n}" not in names:
      absent.append(f"rl.losses.{n}")
  absent += [f"rl.methods.{m}" for m in methods.METHODS if f"rl.methods.{m}" not in names]
  assert not absent, f"docs/seeds.md never names {absent}"
