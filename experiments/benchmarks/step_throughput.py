"""SimCLR training-step throughput: ResNet-18 (CIFAR stem) on 32 x 32 images, batch 512 pairs, pairs/s and MFU.

  python experiments/benchmarks/step_throughput.py                        # the issue's setting
  python experiments/benchmarks/step_throughput.py --batch 64 --steps 3 --skip-torch   # a quick CPU look

Rows, each timed over `--steps` steps after `--warmup` (compilation happens before the warm-up and is not timed):
- model-only: the trainer's own step (`rl.train.step.make_train_step`, the `configs/simclr.py:cifar10` method,
  LARS, the online probe) fed two views that are already float32 arrays on the device (random normal values:
  the work does not depend on them): forward and backward of both views, NT-Xent, optimizer update;
- end-to-end: the same step fed uint8 [b, 32, 32, 3] images on the device, which it augments into two SimCLR
  CIFAR views (`augment_images`, inside the jitted step) first: what `experiments/main.py` runs per step;
- PyTorch eager and `torch.compile` (if `import torch` works): the same network (ResNet-18 CIFAR stem written
  below, projector 2048-256 with BatchNorm), NT-Xent and an SGD-momentum update (torch.optim.SGD, foreach; ours
  is LARS, which does a little more work), on the same views, bf16 autocast on CUDA, channels-last, cuDNN
  autotuning; a model-only step, so it is compared with our end-to-end step conservatively.

MFU = pairs/s x FLOP per pair / peak FLOP/s. FLOP per pair comes from XLA's cost analysis of the compiled
model-only step (`jit(...).lower(...).compile().cost_analysis()`, per device, times the devices, over the
global batch). XLA counts only the convolution taps that fall inside the image, not the zero padding: 5.84
GFLOP per pair for ResNet-18 (XLA on CPU; a hand count of the same convention gives 5.79, plus element-wise
work), against the issue's dense count of 6.7 GFLOP (forward and backward of both views), so our MFU is the
lower of the two readings. Peaks are dense bf16 tensor-core FLOP/s from the vendor's datasheet, keyed by
`jax.devices()[0].device_kind` (CPU: n/a); for an H200 the issue's measured achievable peak (790 TFLOP/s) is a
second column. The bars of the issue are printed with pass/fail on a GPU and "not measured (no GPU)" elsewhere.
Results: experiments/benchmarks/results/step_throughput.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from typing import Any, Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# PyTorch (optional) goes first: Triton, torch.compile's backend, crashes the process (segmentation fault in its
# LLVM) when it is loaded after TensorFlow, which the TFDS pipeline of `rl.data` imports.
try:
  import torch  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  import triton  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
except ImportError:
  pass

import jax  # noqa: E402
import ml_collections  # noqa: E402
import numpy as np  # noqa: E402

from configs import simclr as simclr_config  # noqa: E402
from experiments.benchmarks import timing  # noqa: E402
from rl.train import loop  # noqa: E402
from rl.train import mesh as mesh_lib  # noqa: E402
from rl.train import optim  # noqa: E402
from rl.train import step as step_lib  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "step_throughput.json")
NO_GPU = "not measured (no GPU)"
NO_TORCH = "not measured (no PyTorch)"

# Dense (no sparsity) bf16 tensor-core peaks: (substrings of the device kind that must all appear, FLOP/s, source).
# First match wins, so the PCIe H100 comes before the SXM one ("NVIDIA H100 80GB HBM3").
PEAKS = (
    (("H200",), 989e12, "NVIDIA H200 datasheet: 1,979 TFLOP/s bf16 with sparsity, 989 dense"),
    (("H100", "PCIe"), 756e12, "NVIDIA H100 PCIe datasheet: 1,513 TFLOP/s bf16 with sparsity, 756 dense"),
    (("H100", "HBM3"), 989e12, "NVIDIA H100 SXM datasheet: 1,979 TFLOP/s bf16 with sparsity, 989 dense"),
    (("A100",), 312e12, "NVIDIA A100 datasheet: 312 TFLOP/s bf16 dense"),
)
# What the issue measured as achievable on an H200 (a large bf16 matmul), beside the datasheet's peak.
ACHIEVABLE = ((("H200",), 790e12, "the issue's measured achievable bf16 matmul rate on an H200"),)

# The issue's reference anchors, measured on an H200 (not by this script): pairs/s of the same step.
ANCHORS = {"PyTorch eager": 31.8e3, "torch.compile": 43.6e3, "plain Flax jit": 46.1e3}
ANCHOR_FLOP_PER_PAIR = 6.7e9
BAR_PAIRS_PER_S = 50e3  # end-to-end, H200
BAR_VS_MODEL_ONLY = 0.9
BAR_VS_TORCH_COMPILE = 1.15


def _lookup(table, kind: str):
  for keys, value, source in table:
    if all(k in kind for k in keys):
      return value, source
  return None, None


def peak_flops(kind: str) -> dict:
  """The datasheet and (H200) achievable peaks for `kind`; None where unknown (CPU, other accelerators)."""
  spec, spec_source = _lookup(PEAKS, kind)
  achievable, achievable_source = _lookup(ACHIEVABLE, kind)
  return {"spec": spec, "spec_source": spec_source, "achievable": achievable, "achievable_source": achievable_source}


def machine() -> dict:
  device = jax.devices()[0]
  return {"node": platform.node(), "cpu_count": os.cpu_count(), "jax": jax.__version__, "platform": device.platform,
          "device_kind": device.device_kind, "device_count": jax.device_count()}


def make_config(*, batch: int, dtype: str, width: int = 64, stages: tuple[int, ...] = (2, 2, 2, 2)):
  """`configs/simclr.py:cifar10` with the benchmark's batch, computation dtype and (for tests) a smaller ResNet."""
  config = simclr_config.get_config("cifar10")
  config.batch_size = batch
  config.compute_dtype = dtype
  config.model.encoder_kwargs.width = width
  config.model.encoder_kwargs.stage_sizes = tuple(stages)
  return config


STEP_KINDS = ("model_only", "end_to_end")


@dataclasses.dataclass
class Steps:
  """The compiled steps of one mesh (None where not asked for), their inputs, and a fresh state for each."""
  model_only: Any  # jax.stages.Compiled, batch {'views', 'label'}
  end_to_end: Any  # jax.stages.Compiled, batch {'x', 'label'}
  views_batch: dict
  images_batch: dict
  new_state: Callable[[], Any]
  devices: int
  global_batch: int

  def flop_per_pair(self, which: str = "model_only") -> float | None:
    """XLA's FLOP count of the compiled step (per device) x devices / global batch."""
    analysis = getattr(self, which).cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per program
      analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return None if flops is None or flops <= 0 else float(flops) * self.devices / self.global_batch


def build_steps(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh, *, seed: int = 0,
                kinds: tuple[str, ...] = STEP_KINDS) -> Steps:
  """Compiles the trainer's step for `config` on `mesh`, without (model-only) and with on-device augmentation.

  The model-only step's views are standard-normal float32 arrays of the views' shape: the step's work does not
  depend on the pixel values, and drawing them costs no compilation of the augmentation.

  Args:
    config: a SimCLR image config (`make_config`); `batch_size` is the global batch.
    mesh: a 1-D mesh with axis 'data' (all devices, or a sub-mesh for scaling).
    seed: seeds the parameters and the random inputs.
    kinds: which of `STEP_KINDS` to compile.

  Returns:
    `Steps`; each call of a step consumes (donates) its state, so take one from `new_state()` per timing.
  """
  unknown = sorted(set(kinds) - set(STEP_KINDS))
  if unknown:
    raise ValueError(f"kinds: expected a subset of {STEP_KINDS}; got unknown {unknown}")
  run = loop.build(config, mesh=mesh, prepare_data=False)  # random inputs: the data set is not read
  info = run.info
  state = run.init_state()

  def new_state():
    return jax.tree.map(lambda x: x.copy(), state)

  sharding = mesh_lib.batch_sharding(mesh)
  b = config.batch_size
  rng = np.random.default_rng(seed)
  images = jax.device_put(rng.integers(0, 256, (b,) + tuple(info.shape), dtype=np.uint8), sharding)
  labels = jax.device_put(rng.integers(0, info.num_classes, b).astype(np.int32), sharding)
  views = tuple(jax.device_put(rng.standard_normal((b, size, size, info.shape[-1]), dtype=np.float32), sharding)
                for size in run.view_sizes)
  batches = {"model_only": {"views": views, "label": labels}, "end_to_end": {"x": images, "label": labels}}
  compiled = dict.fromkeys(STEP_KINDS)
  for kind in kinds:
    step = step_lib.make_train_step(run.method, run.tx, run.probe_tx, mesh=mesh, seed=config.seed,
                                    recipes=run.recipes, view_sizes=run.view_sizes, num_classes=info.num_classes,
                                    schedule=optim.learning_rate_schedule(config, config.total_steps),
                                    augment_on_device=kind == "end_to_end")
    compiled[kind] = step.lower(state, batches[kind]).compile()
  return Steps(model_only=compiled["model_only"], end_to_end=compiled["end_to_end"],
               views_batch=batches["model_only"], images_batch=batches["end_to_end"], new_state=new_state,
               devices=mesh.size, global_batch=b)


def time_steps(step, state, batch, *, warmup: int, steps: int) -> float:
  """Seconds per step over `steps` steps after `warmup` steps (the state is carried, as in training)."""
  _, state = timing.run_steps(step, state, batch, warmup)
  seconds, _ = timing.run_steps(step, state, batch, steps)
  return seconds


def measured_row(name: str, seconds: float, pairs: int, flop_per_pair: float | None, peaks: dict, note: str) -> dict:
  rate = pairs / seconds
  mfu = {}
  for key in ("spec", "achievable"):
    mfu[key] = rate * flop_per_pair / peaks[key] if flop_per_pair and peaks[key] else None
  return {"name": name, "status": "measured", "pairs_per_s": rate, "ms_per_step": 1e3 * seconds,
          "flop_per_pair": flop_per_pair, "mfu_spec": mfu["spec"], "mfu_achievable": mfu["achievable"], "note": note}


def unmeasured_row(name: str, status: str, note: str = "") -> dict:
  return {"name": name, "status": status, "pairs_per_s": None, "ms_per_step": None, "flop_per_pair": None,
          "mfu_spec": None, "mfu_achievable": None, "note": note}


# ----------------------------------------------------------------------------------------------------------------
# PyTorch: the same network, loss and (SGD) update, written here.


def _torch_network(torch, *, width: int, stages: tuple[int, ...], hidden: int, out_dim: int):
  """ResNet (basic blocks, CIFAR stem: one 3x3 stride-1 conv, no max-pool) + MLP projector, NCHW."""
  nn = torch.nn

  class Block(nn.Module):
    def __init__(self, c_in, c_out, stride):
      super().__init__()
      self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
      self.bn1 = nn.BatchNorm2d(c_out)
      self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
      self.bn2 = nn.BatchNorm2d(c_out)
      self.shortcut = None
      if stride != 1 or c_in != c_out:
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
      y = torch.relu(self.bn1(self.conv1(x)))
      y = self.bn2(self.conv2(y))
      return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))

  class Network(nn.Module):
    def __init__(self):
      super().__init__()
      layers = [nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
      c_in = width
      for i, n in enumerate(stages):
        for j in range(n):
          layers.append(Block(c_in, width * 2**i, 2 if i > 0 and j == 0 else 1))
          c_in = width * 2**i
      self.encoder = nn.Sequential(*layers)
      self.projector = nn.Sequential(nn.Linear(c_in, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                                     nn.Linear(hidden, out_dim))

    def forward(self, x):
      return self.projector(self.encoder(x).mean(dim=(2, 3)))

  return Network()


def _torch_nt_xent(torch, z, b: int, temperature: float):
  """NT-Xent over the 2b rows of z (view 1 then view 2), as `rl.losses.nt_xent`, in float32."""
  u = torch.nn.functional.normalize(z.float(), dim=1)
  logits = u @ u.t() / temperature
  eye = torch.eye(2 * b, dtype=torch.bool, device=z.device)
  logits = logits.masked_fill(eye, float("-inf"))
  targets = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
  return torch.nn.functional.cross_entropy(logits, targets)


def torch_rows(config, views, *, warmup: int, steps: int, flop_per_pair, peaks, bf16: bool) -> list[dict]:
  """PyTorch eager and torch.compile rows (model-only step on the same views); 'not measured' without torch."""
  names = ("PyTorch eager (model-only)", "PyTorch torch.compile (model-only)")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    return [unmeasured_row(n, NO_TORCH) for n in names]
  cuda = torch.cuda.is_available()
  device = torch.device("cuda" if cuda else "cpu")
  if cuda:
    torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels, as users do
  b = config.batch_size
  x = torch.from_numpy(np.concatenate([np.asarray(v) for v in views])).permute(0, 3, 1, 2).contiguous()
  x = x.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
  enc, proj = config.model.encoder_kwargs, config.model.projector_kwargs
  temperature = float(config.simclr.temperature)
  note = (f"torch {torch.__version__}, {'CUDA, bf16 autocast, channels-last' if cuda and bf16 else device.type}, "
          "SGD-momentum update")
  rows = []
  for name, compiled in zip(names, (False, True)):
    torch.manual_seed(0)
    net = _torch_network(torch, width=int(enc.get("width", 64)), stages=tuple(enc.get("stage_sizes", (2, 2, 2, 2))),
                         hidden=int(proj.hidden_dims[0]), out_dim=int(proj.out_dim)).to(device)
    if cuda:
      net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=float(config.optim.weight_decay),
                          foreach=True)

    def loss_fn(inputs, net=net):
      with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda and bf16):
        return _torch_nt_xent(torch, net(inputs), b, temperature)

    forward = torch.compile(loss_fn) if compiled else loss_fn

    def step(forward=forward, opt=opt):
      opt.zero_grad(set_to_none=True)
      loss = forward(x)
      loss.backward()
      opt.step()
      return loss

    try:
      for _ in range(max(warmup, 2 if compiled else 1)):  # torch compiles (and autotunes) on the first calls
        step()
      if cuda:
        torch.cuda.synchronize()
      start = time.perf_counter()
      for _ in range(steps):
        loss = step()
      float(loss.detach())  # waits for the device
      if cuda:
        torch.cuda.synchronize()
      seconds = (time.perf_counter() - start) / steps
    except Exception as e:  # pylint: disable=broad-except  (torch.compile needs a working compiler toolchain)
      rows.append(unmeasured_row(name, f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", note))
      continue
    rows.append(measured_row(name, seconds, b, flop_per_pair, peaks, note))
  return rows


# ----------------------------------------------------------------------------------------------------------------


def bar_rows(rows: dict, *, kind: str, on_gpu: bool) -> list[dict]:
  """The issue's three bars for the end-to-end step: pass/fail on a GPU, 'not measured (no GPU)' elsewhere."""
  e2e = rows["end-to-end"]["pairs_per_s"]
  model = rows["model-only"]["pairs_per_s"]
  compiled = rows["PyTorch torch.compile (model-only)"]
  bars = []

  def add(name, value, bar, status):
    bars.append({"bar": name, "value": value, "threshold": bar, "status": status})

  if not on_gpu:
    add(f"end-to-end >= {BAR_PAIRS_PER_S / 1e3:.0f}k pairs/s (H200)", None, BAR_PAIRS_PER_S, NO_GPU)
    add(f"end-to-end >= {BAR_VS_MODEL_ONLY} x model-only", None, BAR_VS_MODEL_ONLY, NO_GPU)
    add(f"end-to-end >= {BAR_VS_TORCH_COMPILE} x torch.compile", None, BAR_VS_TORCH_COMPILE, NO_GPU)
    return bars
  if "H200" in kind:
    add(f"end-to-end >= {BAR_PAIRS_PER_S / 1e3:.0f}k pairs/s (H200)", e2e, BAR_PAIRS_PER_S,
        "pass" if e2e >= BAR_PAIRS_PER_S else "fail")
  else:
    add(f"end-to-end >= {BAR_PAIRS_PER_S / 1e3:.0f}k pairs/s (H200)", e2e, BAR_PAIRS_PER_S,
        f"not measured (the bar is for an H200; this is {kind})")
  ratio = e2e / model
  add(f"end-to-end >= {BAR_VS_MODEL_ONLY} x model-only", ratio, BAR_VS_MODEL_ONLY,
      "pass" if ratio >= BAR_VS_MODEL_ONLY else "fail")
  if compiled["pairs_per_s"]:
    ratio = e2e / compiled["pairs_per_s"]
    add(f"end-to-end >= {BAR_VS_TORCH_COMPILE} x torch.compile", ratio, BAR_VS_TORCH_COMPILE,
        "pass" if ratio >= BAR_VS_TORCH_COMPILE else "fail")
  else:
    add(f"end-to-end >= {BAR_VS_TORCH_COMPILE} x torch.compile", None, BAR_VS_TORCH_COMPILE, compiled["status"])
  return bars


def fmt(value, spec: str, scale: float = 1.0, suffix: str = "") -> str:
  return "—" if value is None else f"{value * scale:{spec}}{suffix}"


def markdown(result: dict) -> str:
  """The result as markdown: the measured rows, the peaks used, the bars and the issue's anchors."""
  m, s = result["machine"], result["settings"]
  lines = [f"SimCLR step, {s['model']}, batch {s['batch']} pairs, compute dtype {s['dtype']}, {s['devices']} x "
           f"{m['device_kind']}; {m['node']}, {m['cpu_count']} CPU cores, jax {m['jax']}; {s['steps']} timed steps "
           f"after {s['warmup']}.", "",
           "| step | pairs/s | ms/step | GFLOP/pair (XLA) | MFU (datasheet peak) | MFU (achievable peak) | status "
           "| note |",
           "| --- | --- | --- | --- | --- | --- | --- | --- |"]
  for r in result["rows"]:
    lines.append(f"| {r['name']} | {fmt(r['pairs_per_s'], ',.0f')} | {fmt(r['ms_per_step'], '.1f')} | "
                 f"{fmt(r['flop_per_pair'], '.3g', 1e-9)} | {fmt(r['mfu_spec'], '.1%')} | "
                 f"{fmt(r['mfu_achievable'], '.1%')} | {r['status']} | {r['note']} |")
  p = result["peak"]
  spec = "n/a" if p["spec"] is None else f"{p['spec'] / 1e12:.0f} TFLOP/s ({p['spec_source']})"
  achievable = "n/a" if p["achievable"] is None else f"{p['achievable'] / 1e12:.0f} TFLOP/s ({p['achievable_source']})"
  lines += ["", f"Peak for MFU on {m['device_kind']}: datasheet {spec}; achievable {achievable}.", "",
            "| bar (issue) | value | status |", "| --- | --- | --- |"]
  for bar in result["bars"]:
    value = "—" if bar["value"] is None else (f"{bar['value']:,.0f} pairs/s" if bar["value"] > 100
                                               else f"{bar['value']:.2f}x")
    lines.append(f"| {bar['bar']} | {value} | {bar['status']} |")
  lines += ["", f"The issue's anchors on an H200 (not measured here), at {ANCHOR_FLOP_PER_PAIR / 1e9} GFLOP/pair: "
            + ", ".join(f"{k} {v / 1e3:.1f}k pairs/s" for k, v in ANCHORS.items()) + "."]
  return "\n".join(lines)


def report(result: dict, table: str, path: str) -> dict:
  """Prints the table, writes `result` as JSON to `path` and returns it (shared with scaling.py)."""
  print(table, flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w") as f:
    json.dump(result, f, indent=2)
  print(f"\nwrote {path}")
  return result


def positive_ints(text: str, flag: str, what: str, example: str) -> tuple[int, ...]:
  """A comma-separated list of positive ints from a flag, or a SystemExit naming the flag."""
  try:
    values = tuple(int(t) for t in text.split(","))
  except ValueError:
    values = ()
  if not values or min(values) < 1:
    raise SystemExit(f"{flag}: expected comma-separated positive {what} such as {example}; got {text!r}")
  return values


def parse_stages(text: str) -> tuple[int, ...]:
  return positive_ints(text, "--stages", "block counts", "2,2,2,2")


def resolve_dtype(name: str) -> str:
  """'auto': bfloat16 on accelerators, float32 on CPU (where bfloat16 convolutions are emulated and slow)."""
  if name != "auto":
    return name
  return "float32" if jax.devices()[0].platform == "cpu" else "bfloat16"


def main(argv=None) -> dict:
  """Runs the benchmark, prints the markdown table, writes the JSON and returns the result dict."""
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512, help="pairs per step (global batch)")
  parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation comes before them)")
  parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto",
                      help="config.compute_dtype; auto: bfloat16 on GPU/TPU, float32 on CPU")
  parser.add_argument("--skip-torch", action="store_true", help="no PyTorch rows")
  parser.add_argument("--devices", type=int, default=1, help="devices of the mesh (1: per-chip throughput)")
  parser.add_argument("--width", type=int, default=64, help="ResNet width (64: ResNet-18; smaller for tests)")
  parser.add_argument("--stages", default="2,2,2,2", help="blocks per ResNet stage (2,2,2,2: ResNet-18)")
  parser.add_argument("--out", default=RESULTS, help="JSON output path")
  args = parser.parse_args(argv)
  stages = parse_stages(args.stages)
  if not 1 <= args.devices <= jax.device_count():
    raise SystemExit(f"--devices: expected 1 to {jax.device_count()} (the devices present); got {args.devices}")
  if args.batch < 1 or args.batch % args.devices:
    raise SystemExit(f"--batch: expected a positive multiple of --devices={args.devices}; got {args.batch}")
  if args.steps < 1 or args.warmup < 0:
    raise SystemExit(f"--steps must be >= 1 and --warmup >= 0; got {args.steps} and {args.warmup}")
  dtype = resolve_dtype(args.dtype)
  kind = jax.devices()[0].device_kind
  on_gpu = jax.devices()[0].platform == "gpu"
  peaks = peak_flops(kind)

  config = make_config(batch=args.batch, dtype=dtype, width=args.width, stages=stages)
  mesh = jax.make_mesh((args.devices,), (mesh_lib.AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=jax.devices()[:args.devices])
  steps = build_steps(config, mesh)
  flop_per_pair = steps.flop_per_pair("model_only")
  e2e_flop = steps.flop_per_pair("end_to_end")
  rows = []
  seconds = time_steps(steps.model_only, steps.new_state(), steps.views_batch, warmup=args.warmup, steps=args.steps)
  rows.append(measured_row("model-only", seconds, args.batch, flop_per_pair, peaks,
                           "the trainer's step on float32 views already on the device"))
  seconds = time_steps(steps.end_to_end, steps.new_state(), steps.images_batch, warmup=args.warmup, steps=args.steps)
  rows.append(measured_row("end-to-end", seconds, args.batch, flop_per_pair, peaks,
                           "uint8 images -> 2 augmented views -> the same step; MFU counts model FLOP only"))
  if args.skip_torch:
    rows += [unmeasured_row(n, "not measured (--skip-torch)")
             for n in ("PyTorch eager (model-only)", "PyTorch torch.compile (model-only)")]
  else:
    rows += torch_rows(config, steps.views_batch["views"], warmup=args.warmup, steps=args.steps,
                       flop_per_pair=flop_per_pair, peaks=peaks, bf16=dtype == "bfloat16")
  by_name = {r["name"]: r for r in rows}
  projector = config.model.projector_kwargs
  result = {
      "benchmark": "step_throughput",
      "machine": machine(),
      "settings": {"batch": args.batch, "steps": args.steps, "warmup": args.warmup, "dtype": dtype,
                   "devices": args.devices, "width": args.width, "stages": list(stages),
                   "model": f"ResNet (CIFAR stem, width {args.width}, stages {list(stages)}) + projector "
                            f"{list(projector.hidden_dims)}-{projector.out_dim}"},
      "peak": peaks,
      "end_to_end_flop_per_pair": e2e_flop,
      "rows": rows,
      "bars": bar_rows(by_name, kind=kind, on_gpu=on_gpu),
      "anchors_h200": {"pairs_per_s": ANCHORS, "flop_per_pair": ANCHOR_FLOP_PER_PAIR},
  }
  return report(result, markdown(result), args.out)


if __name__ == "__main__":
  main()
