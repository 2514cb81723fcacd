"""ONNX export of extracted models, int8 quantization with ONNX Runtime, and running them.

Export uses the TorchScript-based exporter (``dynamo=False``): on these small models it takes
0.05-0.4 s where the dynamo exporter takes 3-6 s, which matters when the search exports every
arch it measures; the graphs agree with torch to 1e-5 either way. BatchNorm is folded in.

Quantization is static (calibrated activation ranges), QDQ format, uint8 activations and
per-channel int8 weights (7-bit on CPUs without VNNI, see ``REDUCE_RANGE``), applied to the layers whose
weight and activation bit-widths are both <= 8: 4- and 6-bit weights run as int8 (CPUs have no faster
kernels for them); layers at 32 bits stay float, so a mixed-precision arch runs mixed in ONNX Runtime.
Only the ops that carry the arithmetic (Conv, MatMul, Gemm) are quantized: measured, quantizing the adds
and activations too made the models slower and agreed less with the fake-quantized subnet.
"""
from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from torch import nn

from search_space.arch import Arch
from search_space.files import named_on_failure
from search_space.hybrid import HybridSpace
from search_space.logs import logger_held_at

INPUT, OUTPUT = "input", "output"
QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def _cpu_has_vnni() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # not Linux: assume a CPU whose int8 kernels do not saturate
    return "avx512_vnni" in flags or "avx_vnni" in flags


# Without VNNI, x86 int8 kernels multiply uint8 by int8 with an instruction that saturates its int16
# sums; measured on an AVX2 machine, that flipped 10 % of a subnet's predictions against the
# fake-quantized model. Weights reduced to 7 bits cannot saturate (agreement 100 %, same speed).
REDUCE_RANGE = not _cpu_has_vnni()


def export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Write ``model`` (eval mode) as ONNX with a dynamic batch dimension."""
    model.eval()
    with warnings.catch_warnings(), torch.no_grad(), named_on_failure(path):
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation on every call
        torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, opset_version=17)
    return path


class _Batches(CalibrationDataReader):
    def __init__(self, images: np.ndarray, batch_size: int = 16) -> None:
        self._feeds = iter([{INPUT: images[i:i + batch_size]} for i in range(0, len(images), batch_size)])

    def get_next(self):
        return next(self._feeds, None)


def _module_path(node_name: str) -> str:
    """``/layers/layers.0/expand/Conv`` -> ``layers.0.expand``: the torch module a node came from (scopes
    of the TorchScript exporter are sometimes relative, sometimes qualified names)."""
    path = ""
    for scope in node_name.strip("/").split("/")[:-1]:
        path = scope if (not path or scope.startswith(path + ".")) else f"{path}.{scope}"
    return path


def unshare_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a copy of each initializer for every node past the first that reads it.

    The TorchScript exporter merges initializers of equal value, e.g. the zero biases of convolutions
    whose BatchNorm has not been trained yet (every profiled layer, every untrained subnet). A shared
    bias cannot take each convolution's int32 scale (input scale x weight scale), so ONNX Runtime
    leaves those convolutions unfused (dequantized weights into a float Conv, in every call; its QDQ
    selectors check the bias scale). Measured on an untrained subnet: 5 of 10 int8 convolutions ran
    unfused, and which ones depended on the other layers, so isolated layer timings could not add up
    to a subnet's (the TF Lite converter has the same trap, tensorflow/tensorflow#40055)."""
    initializers = {t.name: t for t in model.graph.initializer}
    readers: dict[str, int] = {}
    copies = []
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name not in initializers:
                continue  # an activation: any number of readers is fine
            readers[name] = readers.get(name, -1) + 1
            if readers[name] == 0:
                continue
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[name])
            copy.name = f"{name}_copy{readers[name]}"
            copies.append(copy)
            node.input[i] = copy.name
    model.graph.initializer.extend(copies)
    return model


def quantize_int8(fp32_path: Path, out_path: Path, calibration: np.ndarray, float_prefixes: Sequence[str] = (),
                  ranges: Mapping[str, tuple[float, float]] | None = None) -> Path:
    """Static int8 QDQ model of ``fp32_path``.

    Quantized: Conv, MatMul and Gemm nodes with a weight, except those whose name starts with one of
    ``float_prefixes`` (e.g. ``/layers/layers.3/``, a 32-bit layer). Products of two activations
    (attention's Q K^T and A V) stay float, as in the fake-quantized subnet. ``ranges`` (module path ->
    (min, max), from ``SubNet.activation_ranges``) sets the input range of a weighted op to the one the
    subnet was trained and calibrated with, so that the int8 model computes what the search measured;
    other tensors get ranges from ``calibration`` images."""
    model = unshare_initializers(onnx.load(str(fp32_path)))
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    ranges = ranges or {}
    exclude, overrides = [], {}
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS:
            continue
        if any(node.name.startswith(p) for p in float_prefixes) or len(node.input) < 2 or node.input[1] not in weights:
            exclude.append(node.name)
        elif (rng := ranges.get(_module_path(node.name))) is not None:
            overrides[node.input[0]] = [{"rmin": np.float32(rng[0]), "rmax": np.float32(rng[1])}]
    with logger_held_at(None, logging.ERROR), named_on_failure(out_path):  # the quantizer advises on the root
        quantize_static(model, str(out_path), _Batches(calibration.astype(np.float32)),
                        quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, op_types_to_quantize=list(QUANTIZED_OPS),
                        reduce_range=REDUCE_RANGE,
                        nodes_to_exclude=exclude, extra_options={"TensorQuantOverrides": overrides})
    return out_path


ALL_FLOAT = ("",)  # the prefix of every node name: nothing runs in int8


def float_prefixes(space: HybridSpace, arch: Arch, runs_int8) -> tuple[str, ...]:
    """Node-name prefixes of the parts of ``arch``'s extracted ``SubNet`` that stay float: the layers
    for which ``runs_int8(weight bits, activation bits)`` is false, and the stem and head unless
    ``HybridSpace.frame_int8`` puts them in int8; ``ALL_FLOAT`` when that is every part."""
    layers = arch.layers()
    prefixes = [f"/layers/layers.{i}/" for i, layer in enumerate(layers) if not runs_int8(layer.wbits, layer.abits)]
    prefixes += frame_float_prefixes(*space.frame_int8(arch, runs_int8))
    return ALL_FLOAT if len(prefixes) == len(layers) + 2 else tuple(prefixes)


def frame_float_prefixes(stem_int8: bool, head_int8: bool) -> list[str]:
    """The node-name prefixes of the stem and the head that stay float."""
    return [name for name, int8 in (("/stem/", stem_int8), ("/head/", head_int8)) if not int8]


def session(path: Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU inference session with a fixed thread count (so latencies stay comparable)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    return sess.run(None, {INPUT: np.ascontiguousarray(images, dtype=np.float32)})[0]


def timed_call(sess: ort.InferenceSession, images: np.ndarray) -> Callable[[], object]:
    """One call of ``sess`` on ``images`` for timing: input and output bound once (I/O binding), so that
    the time is the model's and not the Python binding's per-call conversions, which added 3-10 us to
    subnets of 40-300 us here (docs/experiments.md, session 25), the most to the smallest, relatively."""
    binding = sess.io_binding()
    binding.bind_cpu_input(INPUT, np.ascontiguousarray(images, dtype=np.float32))
    binding.bind_output(OUTPUT)
    return lambda: sess.run_with_iobinding(binding)
