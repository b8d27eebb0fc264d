"""The runtimes a latency is predicted for, each at a stated thread count and batch size.

- `torch`: eager PyTorch, BatchNorm folded into the conv before it (`normnas.nn.fold_bn`),
  torch's intra-op threads set to `threads`.
- `torchscript`: the folded model traced and frozen (`torch.jit.freeze`), same threads.
- `onnxruntime`: the folded model exported to ONNX (opset 17) and run by ONNX Runtime's CPU
  execution provider, `intra_op_num_threads=threads`, one inter-op thread, sequential
  execution, every graph optimization on (its default).
- `cuda`: eager PyTorch on the GPU, folded, synchronized after each call (only where a GPU
  is present; `threads` is then the host's torch threads).

`runner(model, target, shape)` turns a module into a call `fn()` that runs one batch of
`target.batch` inputs the way the target would; `timed(...)` times it with the protocol of
`normnas.latency.protocol`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import platform
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from normnas.errors import UserError
from normnas.nn import ChannelLayerNorm, fold_bn
from normnas.train.threads import cpu_threads

TARGETS: tuple[str, ...] = ("torch", "torchscript", "onnxruntime", "cuda")
ONNX_OPSET = 17  # as normnas.export.onnx writes it


@dataclass(frozen=True)
class Target:
    """A runtime at a thread count and batch size."""

    name: str
    threads: int = 1
    batch: int = 1

    def __post_init__(self) -> None:
        if self.name not in TARGETS:
            raise UserError(f"--target {self.name!r}: expected one of {', '.join(TARGETS)}")
        if self.threads < 1 or self.batch < 1:
            raise UserError(
                f"--threads and --batch must be >= 1, got {self.threads} and {self.batch}"
            )
        if self.name == "cuda" and not torch.cuda.is_available():
            raise UserError("--target cuda: no CUDA GPU is visible to torch here")
        if self.name == "onnxruntime":
            try:
                import onnx  # noqa: F401
                import onnxruntime  # noqa: F401
            except ImportError:
                raise UserError(
                    "--target onnxruntime needs onnx and onnxruntime: pip install 'normnas[onnx]'"
                ) from None

    @property
    def label(self) -> str:
        return f"{self.name}, {self.threads} thread(s), batch {self.batch}"


def runtime_versions(target: Target) -> dict[str, str]:
    """The versions a table's figures depend on (those of the target's runtime)."""
    out: dict[str, str] = {"torch": str(torch.__version__)}
    if target.name == "onnxruntime":
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    if target.name == "cuda":
        out["cuda"] = str(torch.version.cuda)
        out["gpu"] = torch.cuda.get_device_name(0)
    return out


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform says."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


class _PermutedChannelLayerNorm(nn.Module):
    """ChannelLayerNorm with explicit permutations: the TorchScript-based ONNX exporter
    writes `movedim(1, -1)` as a Transpose with a negative axis, which ONNX Runtime
    rejects (the same swap as normnas.export.onnx, which sits above this package)."""

    def __init__(self, norm: ChannelLayerNorm) -> None:
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.permute(0, 2, 3, 1)
        out = F.layer_norm(
            last, (self.norm.num_features,), self.norm.weight, self.norm.bias, self.norm.eps
        )
        return out.permute(0, 3, 1, 2)


def _onnx_ready(model: nn.Module) -> nn.Module:
    ready = copy.deepcopy(model)
    if isinstance(ready, ChannelLayerNorm):  # a table's unit may be the norm alone
        return _PermutedChannelLayerNorm(ready).eval()
    for name, module in list(ready.named_modules()):
        if isinstance(module, ChannelLayerNorm):
            parent, _, attr = name.rpartition(".")
            owner = ready.get_submodule(parent) if parent else ready
            setattr(owner, attr, _PermutedChannelLayerNorm(module))
    return ready.eval()


def _onnx_session(model: nn.Module, x: torch.Tensor, threads: int) -> Any:
    import onnxruntime as ort

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _onnx_ready(model), (x,), buffer, dynamo=False, opset_version=ONNX_OPSET,  # type: ignore[arg-type]
            input_names=["input"], output_names=["output"],
        )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # no warnings about unused initializers
    return ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def pinned(target: Target) -> Iterator[None]:
    """torch's intra-op threads at the target's count inside the block."""
    with cpu_threads(target.threads):
        yield


def _onnx_identity(shape: Sequence[int], threads: int) -> Any:
    """A session of one Identity node: the exporter writes nn.Identity as an empty graph,
    which ONNX Runtime refuses."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    io_ = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(shape)) for n in ("x", "y")]
    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "null", io_[:1], io_[1:])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)])
    onnx.checker.check_model(proto)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(
        proto.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def runner(model: nn.Module, target: Target, shape: Sequence[int]) -> Callable[[], object]:
    """`fn()` running one (batch, *shape) batch through `model` (eval, BN folded) on the
    target. Call it inside `pinned(target)`. An `nn.Identity` is the empty graph whose
    time is the runtime's overhead per call."""
    net = fold_bn(model.eval()).eval()
    x = torch.randn((target.batch, *shape))
    if target.name == "onnxruntime":
        if isinstance(model, nn.Identity):
            sess = _onnx_identity(x.shape, target.threads)
        else:
            sess = _onnx_session(net, x, target.threads)
        # a graph that ignores its input (a node of zeros) has no input left
        feed = {i.name: x.numpy() for i in sess.get_inputs()}
        return lambda: sess.run(None, feed)
    if target.name == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scripted = torch.jit.freeze(torch.jit.trace(net, (x,)).eval())
        net = scripted  # type: ignore[assignment]
    if target.name == "cuda":
        net, x = net.cuda(), x.cuda()

        def run_cuda() -> object:
            with torch.no_grad():
                out = net(x)
            torch.cuda.synchronize()
            return out

        return run_cuda

    def run() -> object:
        with torch.no_grad():
            return net(x)

    return run
