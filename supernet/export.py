"""Export one subnet as deployable artefacts, each loaded back and checked against the supernet.

The folder holds ``arch.yaml`` (the arch, its space and its measured metrics), ``space.yaml``,
``model.pt`` (state dict of the standalone fake-quantized model), ``model.pt2`` (a ``torch.export``
program of it), ``model_fp32.onnx`` and, when some layer runs in int8, ``model_int8.onnx``, and a
``README.md`` that says how to load each one and what was measured. A check that fails raises
``ExportError`` after writing the folder, so the user can inspect what was produced.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from search_space.arch import Arch
from search_space.errors import HynasError
from search_space.files import atomic_write, atomic_write_text
from search_space.hybrid import HybridSpace
from search_space.objectives import format_value
from search_space.schema import to_plain
from supernet import onnx_io
from supernet.calibration import accuracy, calibrated
from supernet.data import Dataset, Preprocessing
from supernet.model import Supernet

log = logging.getLogger("hynas.export")

# How closely each artefact must reproduce the supernet's predictions on the check batch.
EXACT_TOLERANCE = 1e-4  # torch artefacts: max abs logit difference from the supernet
FP32_TOLERANCE = 1e-3  # ONNX fp32: max abs logit difference from the same graph in torch (BN folded)
# ONNX int8: top-1 agreement with the supernet on the images it decides clearly (its two most probable classes
# CLEAR_GAP or more apart). Near-ties flip under int8 rounding without anything being wrong: a 1-epoch supernet's
# smallest subnet agreed on 94.5 % of 256 images, every disagreement a near-tie (top-1 logit margin < 0.16, int8
# logit error median 0.04), and on 100 % of the rest.
INT8_AGREEMENT = 0.95
CLEAR_GAP = 0.10


class ExportError(HynasError):
    pass


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    checks: dict[str, float]  # artefact -> max abs logit difference, or top-1 agreement (int8; NaN: unchecked)
    accuracy: dict[str, float]  # split -> top-1 % of the exported (fake-quantized) model


def _save_torch(obj: Any, path: Path) -> None:
    atomic_write(path, lambda fh: torch.save(obj, fh))


def export_subnet(net: Supernet, arch: Arch, data: Dataset, folder: Path, bn_batches: int,
                  runs_int8, metrics: dict[str, float] | None = None, note: str = "",
                  weights: str | None = None) -> ExportResult:
    """Write the artefacts of ``arch`` into ``folder`` and check each one. ``runs_int8(wbits, abits)``
    decides which layers the int8 ONNX model quantizes (a hardware profile's rule); ``weights``, the digest of the
    checkpoint ``net`` was loaded from, is recorded in ``arch.yaml`` (``finished_export`` reads it)."""
    space = net.space
    folder.mkdir(parents=True, exist_ok=True)
    x = data.val.images[:256]
    device = next(net.parameters()).device
    # The artefacts are for CPU runtimes (and ONNX export and its checks run there), whatever the supernet's device.
    with calibrated(net, arch, data.train, bn_batches), torch.no_grad():
        reference = net(x.to(device), arch).cpu()
        simulated = net.extract(arch).eval().cpu()
        deployed = net.extract(arch, simulate_activations=False).eval().cpu()
    ranges = simulated.activation_ranges()
    probabilities = np.sort(torch.softmax(reference, dim=1).numpy(), axis=1)
    clear = probabilities[:, -1] - probabilities[:, -2] >= CLEAR_GAP
    top1 = reference.argmax(1).numpy()
    checks: dict[str, float] = {}
    details: dict[str, str] = {}  # how a check reads in the README, where the value alone does not say it

    _save_torch(simulated.state_dict(), folder / "model.pt")
    rebuilt = Supernet(space).extract(arch).eval()
    rebuilt.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    with torch.no_grad():
        checks["model.pt"] = float((rebuilt(x) - reference).abs().max())

    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.export.export(simulated, (x[:2],), dynamic_shapes=({0: batch},))
    atomic_write(folder / "model.pt2", lambda fh: torch.export.save(program, fh))
    with torch.no_grad():
        checks["model.pt2"] = float((torch.export.load(folder / "model.pt2").module()(x) - reference).abs().max())

    onnx_io.export_onnx(deployed, x[:1], folder / "model_fp32.onnx")
    with torch.no_grad():  # fp32 has no activation quantization by design: compare it with that float graph
        float_logits = deployed(x).numpy()
    fp32_logits = onnx_io.run(onnx_io.session(folder / "model_fp32.onnx"), x.numpy())
    checks["model_fp32.onnx"] = float(np.abs(fp32_logits - float_logits).max())
    prefixes = onnx_io.float_prefixes(space, arch, runs_int8)
    if prefixes != onnx_io.ALL_FLOAT:
        onnx_io.quantize_int8(folder / "model_fp32.onnx", folder / "model_int8.onnx",
                              data.train.images[:64].numpy(), prefixes, ranges)
        agrees = onnx_io.run(onnx_io.session(folder / "model_int8.onnx"), x.numpy()).argmax(1) == top1
        if clear.any():
            checks["model_int8.onnx"] = float(agrees[clear].mean())
            details["model_int8.onnx"] = (
                f"top-1 agreement with the supernet {100 * checks['model_int8.onnx']:.1f} % on the "
                f"{int(clear.sum())} images it decides clearly (top two probabilities {100 * CLEAR_GAP:.0f}+ points "
                f"apart), {100 * agrees.mean():.1f} % on all {len(agrees)}")
        else:  # a barely trained model: nothing here tells an int8 fault from near-ties flipping, so say so
            checks["model_int8.onnx"] = math.nan
            details["model_int8.onnx"] = (
                f"not checked: the supernet decides none of the {len(agrees)} images clearly (top two probabilities "
                f"{100 * CLEAR_GAP:.0f}+ points apart); top-1 agreement {100 * agrees.mean():.1f} % on all of them")
            log.warning("%s: model_int8.onnx not checked: the supernet decides none of the %d check images clearly "
                        "(train longer or fine-tune, then export again)", folder, len(agrees))

    scores = {"validation": accuracy(simulated, data.val), "test": accuracy(simulated, data.test)}
    atomic_write_text(folder / "space.yaml", yaml.safe_dump(to_plain(space), sort_keys=False))
    atomic_write_text(folder / "arch.yaml", yaml.safe_dump({
        "arch": arch.to_str(), "space": space.name, "layers": [layer.to_str() for layer in arch.layers()],
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
        "accuracy_exported": scores, "checks": checks, "note": note, **({"weights": weights} if weights else {}),
        "input": data.preprocessing.to_plain(), "classes": _output_names(data.preprocessing, space)},
        sort_keys=False))
    atomic_write_text(folder / "README.md", _readme(arch, space, data.preprocessing, metrics or {}, scores, checks,
                                                    details, len(x), note, _low_bits_note(arch, runs_int8)))
    failed = failed_checks(checks)
    if failed:
        raise ExportError(f"{folder}: {', '.join(failed)} did not reproduce the supernet's predictions "
                          f"({', '.join(f'{k}={checks[k]:.4g}' for k in failed)}); see {folder / 'README.md'}")
    return ExportResult(folder, checks, scores)


def failed_checks(checks: dict[str, float]) -> list[str]:
    """The artefacts whose check failed (an unchecked one, NaN, has not)."""
    return [name for name, value in checks.items() if _verdict(name, value) == "FAILED"]


def finished_export(folder: Path, arch: Arch, weights: str) -> ExportResult | None:
    """What ``folder`` holds when it is a finished export of ``arch`` from the checkpoint of digest ``weights`` whose
    checks all passed (its ``arch.yaml`` and ``README.md`` are written after every artefact); None otherwise."""
    try:
        done = yaml.safe_load((folder / "arch.yaml").read_text()) if (folder / "README.md").is_file() else None
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(done, dict) or done.get("arch") != arch.to_str() or done.get("weights") != weights:
        return None
    checks = {name: float(value) for name, value in done.get("checks", {}).items()}
    return None if failed_checks(checks) else ExportResult(folder, checks, done.get("accuracy_exported", {}))


def _output_names(prep: Preprocessing, space: HybridSpace) -> list[str]:
    """A name per model output: the data set's classes, then the outputs it leaves unused (a space may have more)."""
    return list(prep.classes) + ["(unused)"] * (space.input.classes - len(prep.classes))


def _numbers(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:.4f}" for v in values) + ")"


def _verdict(name: str, value: float) -> str:
    """ok, FAILED, or unchecked (NaN: a check that could not decide, see export_subnet)."""
    if math.isnan(value):
        return "unchecked"
    if name == "model_int8.onnx":
        passes = value >= INT8_AGREEMENT
    else:
        passes = value <= (FP32_TOLERANCE if name == "model_fp32.onnx" else EXACT_TOLERANCE)
    return "ok" if passes else "FAILED"


def _low_bits_note(arch: Arch, runs_int8) -> str:
    """What the README says about bit-widths below 8, where the subnet has any (a paragraph, or nothing): the
    torch artefacts simulate them; ONNX has no such types, so there they run at 8 bits or as floats."""
    layers = arch.layers()
    low_weights = [runs_int8(layer.wbits, layer.abits) for layer in layers if layer.wbits < 8]
    low_acts = [runs_int8(layer.wbits, layer.abits) for layer in layers if layer.abits < 8]
    if not low_weights and not low_acts:
        return ""
    widths = sorted({f"{layer.wbits}-bit weights" for layer in layers if layer.wbits < 8}) + \
        sorted({f"{layer.abits}-bit activations" for layer in layers if layer.abits < 8})
    where = [text for text, present in (
        ("such weights run as int8 in `model_int8.onnx` in layers whose activations have at most 8 bits (CPUs "
         "have no faster kernels for fewer)", any(low_weights)),
        ("such weights keep their quantized values as floats in layers with 32-bit activations",
         not all(low_weights)),
        ("such activations run at 8 bits in `model_int8.onnx` (calibrated ranges) where the layer's weights have at "
         "most 8 bits", any(low_acts)),
        ("such activations stay float where the layer's weights have 32 bits", not all(low_acts))) if present]
    return (f"{_join(widths)} are simulated (fake quantization) in the torch artefacts; in the ONNX models "
            f"{'; '.join(where)}." + (" Weights are counted at their width for size." if low_weights else "") + "\n\n")


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _readme(arch: Arch, space: HybridSpace, prep: Preprocessing, metrics: dict, scores: dict, checks: dict,
            details: dict, checked_images: int, note: str, low_bits: str) -> str:
    def check_line(name: str) -> str:
        value = checks[name]
        what = details.get(name) or {
            "model_fp32.onnx": f"max abs logit difference from the float torch graph {value:.2e} (no "
                               "activation quantization)"}.get(name, f"max abs logit difference {value:.2e}")
        return f"| `{name}` | {what} | {_verdict(name, value)} |"

    has_int8 = "model_int8.onnx" in checks  # int8 only where bits allow
    onnx_file = "model_int8.onnx" if has_int8 else "model_fp32.onnx"
    no_int8 = "" if has_int8 else (
        "\nNo `model_int8.onnx`: no layer of this subnet runs in int8 (each has 32-bit weights or activations); "
        "`model_fp32.onnx` is its ONNX model.\n")
    measured = "\n".join(f"| {k} | {format_value(k, v)} |" for k, v in metrics.items()) or "| (none recorded) | |"
    return f"""# Exported subnet

`{arch.to_str()}` of space `{space.name}`. {note}

## Measured
| metric | value |
|---|---|
{measured}
| validation accuracy of the exported model | {scores['validation']:.2f} % |
| test accuracy of the exported model | {scores['test']:.2f} % |

{low_bits}## Files, and how each reproduces the supernet ({checked_images} validation images)
| file | check | |
|---|---|---|
{chr(10).join(check_line(n) for n in checks)}
{no_int8}
## Input
The normalization of the training data, recorded as `input` and `classes` in `arch.yaml`:
- shape `(N, {prep.channels}, {prep.size}, {prep.size})`, float32;
- pixels 0..255 (other sizes resized bicubically, as hynas does for image folders) divided by 255, then per
  channel minus `mean` {_numbers(prep.mean)} and divided by `std` {_numbers(prep.std)};
- output `i` is class `classes[i]`: {', '.join(prep.classes[:12])}{', ...' if len(prep.classes) > 12 else ''}.

## Loading
```python
import torch, yaml
from search_space.schema import build
from search_space.hybrid import HybridSpace
from supernet.model import Supernet

space = build(HybridSpace, yaml.safe_load(open("space.yaml")), "space.yaml")
arch = space.arch_from_str(yaml.safe_load(open("arch.yaml"))["arch"])
model = Supernet(space).extract(arch).eval()          # model.pt: the fake-quantized standalone model
model.load_state_dict(torch.load("model.pt", weights_only=True))

program = torch.export.load("model.pt2").module()      # model.pt2: no hynas needed

import numpy as np
import onnxruntime as ort                              # model_fp32.onnx / model_int8.onnx: input "input"
session = ort.InferenceSession("{onnx_file}")
info = yaml.safe_load(open("arch.yaml"))
pixels = np.zeros((1, {prep.channels}, {prep.size}, {prep.size}), dtype=np.uint8)  # your images, (N, C, H, W), 0..255
mean = np.array(info["input"]["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
std = np.array(info["input"]["std"], dtype=np.float32).reshape(1, -1, 1, 1)
images = (pixels.astype(np.float32) / 255 - mean) / std
logits = session.run(None, {{"input": images}})[0]
print([info["classes"][i] for i in logits.argmax(1)], model(torch.from_numpy(images)).argmax(1),
      program(torch.from_numpy(images)).argmax(1))
```
"""
