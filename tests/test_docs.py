"""The API reference (`make docs`) builds with no broken reference, and the docstring examples run.

Three checks:
- pdoc renders all of `rl` with no warning, every relative link (and its `#anchor`) in the HTML points at a
  page and an element that exist, and every `rl.<name>` written in backquotes in a docstring names a real
  module or object (pdoc silently leaves an unresolvable one unlinked, so this is checked here);
- the `>>>` examples of every module of `rl` pass as doctests;
- every public function of `rl` shows at least one `>>>` example.
"""
from __future__ import annotations

import doctest
import html.parser
import importlib
import inspect
import pkgutil
import re
import urllib.parse
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rl
import rl.losses

# Names the examples may use without importing them (the docstrings stay short).
DOCTEST_GLOBS = {"jax": jax, "jnp": jnp, "np": np, "rl": rl, "losses": rl.losses}

# Packages whose public functions must all carry a `>>>` example: all of `rl`.
COMPLETE = ("rl",)

# Public functions that cannot have a runnable example, each with the reason. Keep it short.
NO_EXAMPLE: dict[str, str] = {}

# pdoc warnings that are not about references. Each entry: a substring of the message and why it is harmless.
PDOC_WARNINGS_ALLOWED = (
    # `platform.processor()` (called at import by a dependency) runs `uname -p`; pdoc blocks subprocesses.
    "Suppressed execution of",
    # A NamedTuple re-exported by `rl.eval`: pdoc resolves its generated `__init__` annotations in the
    # namespace of `rl.eval`, which does not import numpy. The annotation itself is valid in rl.eval.linear.
    "ForwardRef('np.ndarray') for rl.eval.LogisticRegressionFit.__init__",
)


def _module_names(include_private: bool) -> list[str]:
  names = ["rl"]
  for info in pkgutil.walk_packages(rl.__path__, "rl."):
    if include_private or not any(part.startswith("_") for part in info.name.split(".")):
      names.append(info.name)
  return sorted(names)


def _public_functions(module) -> list[tuple[str, object]]:
  """The functions a module exports: its `__all__`, else its non-underscore names defined in it."""
  exported = getattr(module, "__all__", None)
  names = exported if exported is not None else [n for n in vars(module) if not n.startswith("_")]
  found = []
  for name in names:
    obj = getattr(module, name)
    if inspect.isfunction(obj) and (exported is not None or obj.__module__ == module.__name__):
      found.append((f"{obj.__module__}.{obj.__qualname__}", obj))
  return found


def _resolves(dotted: str) -> bool:
  parts = dotted.split(".")
  for cut in range(len(parts), 0, -1):
    try:
      obj = importlib.import_module(".".join(parts[:cut]))
    except ImportError:
      continue
    for attr in parts[cut:]:
      if not hasattr(obj, attr):
        return False
      obj = getattr(obj, attr)
    return True
  return False


class _Links(html.parser.HTMLParser):

  def __init__(self):
    super().__init__()
    self.links, self.ids = [], set()

  def handle_starttag(self, tag, attrs):
    attrs = dict(attrs)
    if attrs.get("id"):
      self.ids.add(attrs["id"])
    for key in ("href", "src"):
      if attrs.get(key):
        self.links.append(attrs[key])


@pytest.fixture(scope="module")
def api_reference(tmp_path_factory):
  import pdoc  # pylint: disable=import-outside-toplevel  (a test extra in setup.py: missing it is a failure)
  import pdoc.render  # pylint: disable=import-outside-toplevel
  out = tmp_path_factory.mktemp("api")
  pdoc.render.configure(docformat="google", math=True)  # the options of `make docs`
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    pdoc.pdoc("rl", output_directory=out)
  return out, [str(w.message) for w in caught]


@pytest.mark.xdist_group("api_reference")  # one pdoc build for both (`--dist loadgroup`)
def test_api_reference_has_no_pdoc_warnings(api_reference):
  _, messages = api_reference
  unexpected = [m for m in messages if not any(allowed in m for allowed in PDOC_WARNINGS_ALLOWED)]
  assert not unexpected, "pdoc warned:\n" + "\n".join(unexpected)


@pytest.mark.xdist_group("api_reference")  # one pdoc build for both (`--dist loadgroup`)
def test_api_reference_relative_links_resolve(api_reference):
  out, _ = api_reference
  pages = {}
  for page in out.rglob("*.html"):
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    pages[page.resolve()] = parser
  assert out.joinpath("rl.html").resolve() in pages and out.joinpath("rl", "losses.html").resolve() in pages
  broken, checked = [], 0
  for page, parser in pages.items():
    for link in parser.links:
      url = urllib.parse.urlsplit(link)
      if url.scheme or url.netloc or link.startswith("//"):
        continue  # external (CDN scripts, paper links)
      target = page if not url.path else (page.parent / urllib.parse.unquote(url.path)).resolve()
      checked += 1
      if not target.exists():
        broken.append(f"{page.relative_to(out.resolve())}: {link} (no such file)")
      elif url.fragment and target.suffix == ".html":
        if target not in pages:
          parser_t = _Links()
          parser_t.feed(target.read_text(encoding="utf-8"))
          pages[target] = parser_t
        if urllib.parse.unquote(url.fragment) not in pages[target].ids:
          broken.append(f"{page.relative_to(out.resolve())}: {link} (no element with that id)")
  assert checked > 1000, f"only {checked} relative links found: is the HTML what pdoc usually writes?"
  assert not broken, f"{len(broken)} broken links:\n" + "\n".join(broken[:50])


def test_docstring_references_to_rl_resolve():
  pattern = re.compile(r"`(rl(?:\.\w+)+)`")
  broken = []
  for name in _module_names(include_private=True):
    module = importlib.import_module(name)
    for path_name, text in [(name, module.__doc__ or "")] + [
        (f"{name}.{n}", getattr(o, "__doc__", None) or "") for n, o in vars(module).items()
        if (inspect.isfunction(o) or inspect.isclass(o)) and getattr(o, "__module__", None) == name]:
      broken += [f"{path_name}: `{ref}`" for ref in pattern.findall(text) if not _resolves(ref)]
  assert not broken, "docstrings name things that do not exist:\n" + "\n".join(sorted(set(broken)))


@pytest.mark.parametrize("module_name", _module_names(include_private=True))
def test_doctests(module_name):
  module = importlib.import_module(module_name)
  finder = doctest.DocTestFinder()
  runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
  report = []
  for test in finder.find(module, module_name, extraglobs=DOCTEST_GLOBS):
    runner.run(test, out=report.append)
  result = runner.summarize(verbose=False)
  assert result.failed == 0, "".join(report)
  # The one place the examples run (the per-module test files do not repeat them): a public module with public
  # functions whose examples all went unfound (e.g. a broken finder or `__test__`) is a failure.
  defined_here = [q for q, fn in _public_functions(module) if fn.__module__ == module_name]
  if not any(part.startswith("_") for part in module_name.split(".")) and defined_here:
    assert result.attempted > 0, f"{module_name}: no `>>>` example ran"


def test_every_public_function_has_an_example():
  missing, covered = [], set()
  for name in _module_names(include_private=False):
    if not name.startswith(COMPLETE):
      continue
    for qualified, fn in _public_functions(importlib.import_module(name)):
      if qualified in covered or qualified in NO_EXAMPLE:
        continue
      covered.add(qualified)
      if ">>>" not in (fn.__doc__ or ""):
        missing.append(qualified)
  assert len(covered) > 100, f"only {len(covered)} functions found: did the module walk break?"
  assert not missing, f"{len(missing)} public functions without a `>>>` example:\n" + "\n".join(sorted(missing))


def test_no_example_list_names_real_functions_without_examples():
  for qualified, why in NO_EXAMPLE.items():
    module_name, _, attr = qualified.rpartition(".")
    fn = getattr(importlib.import_module(module_name), attr)
    assert inspect.isfunction(fn) and why, qualified
    assert ">>>" not in (fn.__doc__ or ""), f"{qualified} has an example now: remove it from NO_EXAMPLE"
