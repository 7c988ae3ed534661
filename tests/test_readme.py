"""README.md stays true: its first commands, its methods table (against RESULTS.md), its losses table, its links.

- The README starts with exactly the two commands `make run` and `make test` (the house rule), and the Makefile
  has both targets.
- Every method of `rl.methods.METHODS` has a row in the README's methods table, and the linear probe, kNN and
  steps of every row equal the row of the same name in RESULTS.md (the table `results_table.py` writes), so the
  two cannot drift apart.
- The losses table lists every public name of `rl.losses`, each under the family module that defines it, and the
  counts the README states (losses, methods) are the real ones.
- Every relative link points at a file that exists, and every `#anchor` at a heading of the README.
"""
from __future__ import annotations

import inspect
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _tables(text: str) -> list[tuple[list[str], list[list[str]]]]:
  """Every markdown table of `text` as (header cells, rows of cells); cells are stripped."""
  tables, block = [], []
  for line in text.splitlines() + [""]:
    if line.startswith("|"):
      block.append([c.strip() for c in line.strip().strip("|").split("|")])
    elif block:
      if len(block) >= 2 and set("".join(block[1])) <= set("-: "):
        tables.append((block[0], block[2:]))
      block = []
  return tables


def _table_with(text: str, *columns: str, source: str) -> tuple[list[str], list[list[str]]]:
  found = [t for t in _tables(text) if all(c in t[0] for c in columns)]
  assert len(found) == 1, f"{source}: expected one table with the columns {columns}, found {len(found)}"
  return found[0]


def _name(cell: str) -> str:
  return cell.replace("`", "").strip()


def _results_rows() -> dict[str, dict[str, str]]:
  header, rows = _table_with((ROOT / "RESULTS.md").read_text(encoding="utf-8"), "representation", "linear probe %",
                             "kNN-20 %", "steps", source="RESULTS.md")
  return {_name(r[0]): dict(zip(header, r)) for r in rows}


def _readme_methods() -> dict[str, dict[str, str]]:
  header, rows = _table_with(README, "method", "paper", "linear probe %", "kNN-20 %", "steps", source="README.md")
  assert header[0] == "method", header
  named = {}
  for r in rows:
    assert len(r) == len(header), f"README methods table: row {r} has {len(r)} cells, the header {len(header)}"
    assert _name(r[0]) not in named, f"README methods table: {_name(r[0])!r} twice"
    named[_name(r[0])] = dict(zip(header, r))
  return named


def test_readme_starts_with_the_two_commands():
  assert README.startswith("# "), "README.md must open with its title"
  before_first_section = README.split("\n## ", 1)[0]
  blocks = re.findall(r"^```[^\n]*\n(.*?)^```", before_first_section, re.S | re.M)
  assert blocks, "README.md: no code block before the first section"
  commands = [line.split("#", 1)[0].strip() for line in blocks[0].splitlines()]
  assert commands == ["make run", "make test"], f"README.md's first code block runs {commands}"
  makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
  for target in ("run", "test"):
    assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no `{target}` target"


def test_every_method_is_in_the_readme_table():
  from rl.methods import METHODS  # pylint: disable=import-outside-toplevel  (imports Flax: only here)
  missing = sorted(set(METHODS) - set(_readme_methods()))
  assert not missing, f"README methods table lacks {missing}: copy their rows from RESULTS.md"


def test_readme_numbers_equal_results_md():
  results, readme = _results_rows(), _readme_methods()
  for name, row in readme.items():
    if name not in results:  # a method added since the table last ran: no number until results_table.py runs it
      assert [row[c] for c in ("linear probe %", "kNN-20 %", "steps")] == ["—"] * 3, (
          f"README methods table: {name!r} is not a row of RESULTS.md ({sorted(results)}), so its numbers must be "
          f"'—' until results_table.py runs it; got {row}")
      continue
    for column in ("linear probe %", "kNN-20 %", "steps"):
      assert row[column] == results[name][column], (
          f"README methods table, {name!r}, {column!r}: {row[column]!r}; RESULTS.md has {results[name][column]!r}")


def test_readme_table_script_copies_only_the_numbers_of_known_rows():
  from experiments.benchmarks import readme_table  # pylint: disable=import-outside-toplevel
  results = ("| representation | kind | linear probe % | kNN-20 % | steps |\n| --- | --- | --- | --- | --- |\n"
             "| byol | distillation | 96.1 ± 0.3 | 95.0 ± 0.2 | 8000 |\n")
  readme = ("intro\n\n| method | paper | linear probe % | kNN-20 % | steps |\n| --- | --- | --- | --- | --- |\n"
            "| `byol` | BYOL, [link](x) | 75.3 ± 1.5 | 58.5 ± 1.3 | 2000 |\n| `new` | N | 1 | 2 | 3 |\n\n"
            "| other | linear probe % | kNN-20 % | steps |\n| --- | --- | --- | --- |\n| byol | 0 | 0 | 0 |\n")
  text, changed = readme_table.sync(readme, results)
  assert changed == ["byol"]
  assert "| `byol` | BYOL, [link](x) | 96.1 ± 0.3 | 95.0 ± 0.2 | 8000 |\n" in text
  assert "| `new` | N | 1 | 2 | 3 |" in text and "| byol | 0 | 0 | 0 |" in text  # unknown rows, other tables kept
  assert readme_table.sync(text, results) == (text, [])
  # The shipped README is what the script writes from the shipped RESULTS.md.
  assert readme_table.sync(README, (ROOT / "RESULTS.md").read_text(encoding="utf-8"))[1] == []


def test_losses_table_lists_every_public_name_under_its_module():
  from rl import losses  # pylint: disable=import-outside-toplevel
  header, rows = _table_with(README, "family (`rl/losses/`)", "functions", "device-aware", "state",
                             source="README.md")
  listed = {}
  for r in rows:
    family = _name(r[0])
    assert (ROOT / "rl" / "losses" / family).is_file(), f"README losses table: no rl/losses/{family}"
    for name in re.findall(r"`(\w+)`", r[header.index("functions")]):
      assert name not in listed, f"README losses table: {name} listed twice"
      listed[name] = family.removesuffix(".py")
  public = [n for n in losses.__all__ if inspect.isfunction(getattr(losses, n))]
  assert not sorted(set(public) - set(listed)), f"README losses table lacks {sorted(set(public) - set(listed))}"
  extra = sorted(set(listed) - set(public))
  assert not extra, f"README losses table names functions that rl.losses does not export: {extra}"
  wrong = {n: (f, getattr(losses, n).__module__) for n, f in listed.items()
           if getattr(losses, n).__module__ != f"rl.losses.{f}"}
  assert not wrong, f"README losses table: listed under the wrong family (listed, defined in): {wrong}"


def test_stated_counts_are_the_real_ones():
  from rl import losses  # pylint: disable=import-outside-toplevel
  from rl.methods import METHODS  # pylint: disable=import-outside-toplevel
  num_losses = sum(inspect.isfunction(getattr(losses, n)) for n in losses.__all__)
  stated = re.findall(r"`rl\.losses` has (\d+) public functions", README) + re.findall(r"\[(\d+) of them\]\(#losses\)",
                                                                                       README)
  assert stated and all(int(n) == num_losses for n in stated), f"README states {stated} losses; there are {num_losses}"
  stated = re.findall(r"\[(\d+) of them\]\(#methods", README)
  assert stated == [str(len(METHODS))], f"README states {stated} methods; there are {len(METHODS)}"


def _slug(heading: str) -> str:
  """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
  return re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", "")).replace(" ", "-")


@pytest.mark.parametrize("slug_case", [("1. Run an experiment", "1-run-an-experiment"),
                                       ("CIFAR and ImageNet on GPUs and TPU pods",
                                        "cifar-and-imagenet-on-gpus-and-tpu-pods"),
                                       ("Multi-host: TPU pods and Slurm/GPU clusters",
                                        "multi-host-tpu-pods-and-slurmgpu-clusters")])
def test_slug_follows_github(slug_case):
  heading, slug = slug_case
  assert _slug(heading) == slug


def test_relative_links_and_anchors_resolve():
  text = re.sub(r"^```.*?^```", "", README, flags=re.S | re.M)  # links inside code blocks are not links
  headings = {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}
  links = re.findall(r"\]\(([^)\s]+)\)", text)
  checked, broken = 0, []
  for link in links:
    if re.match(r"[a-z]+://", link):
      continue
    path, _, anchor = link.partition("#")
    checked += 1
    if path and not (ROOT / path).exists():
      broken.append(f"{link} (no such file)")
    elif not path and anchor not in headings:
      broken.append(f"{link} (no such heading)")
  assert checked >= 10, f"only {checked} relative links found in README.md: is the pattern still right?"
  assert not broken, "README.md has broken links: " + ", ".join(broken)
