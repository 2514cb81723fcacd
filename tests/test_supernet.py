"""The supernet: exact extraction, analytic costs that agree with torch, quantization, training and checkpoints."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from search_space import Arch, CheckpointError, arch_costs, load_space
from search_space.arch import LayerArch, StageArch
from search_space.config import DataConfig, TrainConfig, load_config
from supernet import blocks, elastic, finetune
from supernet.calibration import calibrated
from supernet.checkpoint import load_checkpoint, save_checkpoint
from supernet.data import load_dataset
from supernet.model import Supernet
from supernet.train import teachers, train_step, train_supernet
from supernet.trained import load_trained


def _warmed(space, seed=0):
    """A supernet whose activation ranges and BN statistics have seen a few batches."""
    torch.manual_seed(seed)
    net = Supernet(space)
    rng = np.random.default_rng(seed)
    x = torch.randn(8, space.input.channels, space.input.size, space.input.size)
    net.train()
    with torch.no_grad():
        for arch in [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(6)]:
            net(x, arch)
    return net.eval(), x


def _count_macs(model, x):
    """MACs by forward hooks on conv and linear modules, plus the attention matmuls."""
    macs = []

    def conv_hook(m, inp, out):
        macs.append(out.numel() // out.shape[0] * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])

    def linear_hook(m, inp, out):
        macs.append(out.numel() // out.shape[0] * m.in_features)

    def attn_hook(m, inp, out):
        tokens = out.shape[2] * out.shape[3]
        macs.append(2 * tokens * tokens * m.heads * m.head_dim)

    handles = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, blocks.StaticAttention):
            handles.append(m.register_forward_hook(attn_hook))
    with torch.no_grad():
        model(x[:1])
    for h in handles:
        h.remove()
    return sum(macs)


def test_extracted_subnets_match_the_supernet_and_the_analytic_costs(hybrid_space):
    net, x = _warmed(hybrid_space)
    rng = np.random.default_rng(1)
    for _ in range(50):
        arch = hybrid_space.sample(rng)
        sub = net.extract(arch).eval()
        with torch.no_grad():
            # bit for bit: the same ops in the same memory layout; any rounding difference can flip
            # an activation quantization level, which moves the logits by far more than rounding
            assert torch.equal(net(x, arch), sub(x))
        costs = arch_costs(hybrid_space, arch)
        assert sum(p.numel() for p in sub.parameters()) == costs.params
        assert _count_macs(sub, x) == costs.macs
        assert not any(isinstance(m, (elastic.ElasticConv2d, elastic.ElasticLinear)) for m in sub.modules())


def _with_bits(arch: Arch, bits: int) -> Arch:
    return Arch(tuple(StageArch(s.width, tuple(replace(layer, wbits=bits, abits=max(bits, 8) if bits < 8 else bits)
                                               for layer in s.layers)) for s in arch.stages))


def test_lower_bit_widths_change_outputs_more_and_32_bits_is_exact(mnist_space, monkeypatch):
    q = replace(mnist_space.quantization, weight_bits=(4, 8, 32), act_bits=(8, 32), stem_head_bits=32)
    space = replace(mnist_space, quantization=q)
    net, x = _warmed(space)
    arch = space.largest()
    with torch.no_grad():
        out32 = net(x, arch)
        out8 = net(x, _with_bits(arch, 8))
        out4 = net(x, _with_bits(arch, 4))
    assert (out4 - out32).abs().mean() > (out8 - out32).abs().mean() > 0
    # 32 bits skips quantization entirely: identical to a forward with the quantizers removed
    monkeypatch.setattr(elastic, "fake_quant_weight", lambda w, bits: w)
    from supernet import quant
    monkeypatch.setattr(quant, "fake_quant_act", lambda x, lo, hi, bits: x)
    with torch.no_grad():
        bare = net(x, arch)
    assert torch.equal(out32, bare)


@pytest.fixture(scope="module")
def tiny_data():
    return load_dataset(DataConfig(limit=400), load_space("mnist_hybrid").input, seed=0)


TINY_TRAIN = TrainConfig(epochs=3, batch_size=32, lr=0.05, bn_batches=2)


def test_training_lowers_the_loss_and_resume_is_bit_exact(mnist_space, tiny_data, tmp_path):
    full = train_supernet(mnist_space, tiny_data, TINY_TRAIN, 0, tmp_path / "full.pt", progress=False)
    losses = [h["loss"] for h in full.history]
    assert losses[-1] < losses[0]
    part = tmp_path / "part.pt"
    train_supernet(mnist_space, tiny_data, TINY_TRAIN, 0, part, progress=False, stop_after_epoch=1)
    assert load_checkpoint(part, mnist_space)["epoch"] == 1
    resumed = train_supernet(mnist_space, tiny_data, TINY_TRAIN, 0, part, resume=True, progress=False)
    assert resumed.history == full.history
    a, b = full.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_other_settings_names_each_one_and_accepts_older_checkpoints(mnist_space, tiny_data, tmp_path):
    part, short = tmp_path / "part.pt", replace(TINY_TRAIN, epochs=2)
    train_supernet(mnist_space, tiny_data, short, 0, part, progress=False, stop_after_epoch=1)
    before = part.read_bytes()
    differences = r"train\.lr=0\.05 in the checkpoint, 0\.1 now; seed=0 in the checkpoint, 1 now"
    with pytest.raises(CheckpointError, match=differences):
        train_supernet(mnist_space, tiny_data, replace(short, lr=0.1), 1, part, resume=True, progress=False)
    assert part.read_bytes() == before
    # a checkpoint from before `teachers` existed was trained with the largest arch alone
    state = load_checkpoint(part, mnist_space)
    del state["train"]["teachers"]
    save_checkpoint(part, state)
    with pytest.raises(CheckpointError, match="train.teachers='largest' in the checkpoint, 'mixed' now"):
        train_supernet(mnist_space, tiny_data, short, 0, part, resume=True, progress=False)
    old = replace(short, teachers="largest")
    assert len(train_supernet(mnist_space, tiny_data, old, 0, part, resume=True, progress=False).history) == 2


def test_the_largest_of_each_block_type_teach_so_both_branches_train_at_full_size(mnist_space):
    teachers = mnist_space.largest_of_each_block()
    assert [a.to_str() for a in teachers] == [
        "c24:conv_k5_e4_w32a32,conv_k5_e4_w32a32|c48:attn_h4_m4_w32a32,attn_h4_m4_w32a32,attn_h4_m4_w32a32",
        "c24:conv_k5_e4_w32a32,conv_k5_e4_w32a32|c48:conv_k5_e4_w32a32,conv_k5_e4_w32a32,conv_k5_e4_w32a32"]
    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])

    def trained(branch) -> bool:
        return all(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())

    for kind, conv_trained in (("mixed", True), ("per-block", True), ("largest", False)):
        torch.manual_seed(0)
        net = Supernet(mnist_space).train()
        cfg = replace(TINY_TRAIN, random_archs=0, teachers=kind)  # then only a teacher reaches the third layer
        assert np.isfinite(train_step(net, mnist_space, cfg, x, y, np.random.default_rng(0)))
        third_layer = net.slots[1][2]
        assert trained(third_layer["attn"])
        assert trained(third_layer["conv"]) is conv_trained


def test_mixed_teachers_deal_out_every_full_size_branch_in_changing_mixes_of_block_types(mnist_space):
    fixed = mnist_space.largest_of_each_block()
    cfg = replace(TINY_TRAIN, teachers="mixed")
    assert teachers(mnist_space, cfg) == fixed  # fine-tuning's teachers: no rng, the per-block ones
    rng, seen = np.random.default_rng(0), set()
    for _ in range(40):
        mixed = teachers(mnist_space, cfg, rng)
        for s, stage in enumerate(fixed[0].stages):
            for i in range(len(stage.layers)):
                held = sorted(map(repr, (a.stages[s].layers[i] for a in mixed)))
                assert held == sorted(map(repr, (a.stages[s].layers[i] for a in fixed)))
        seen.update(tuple(layer.block for layer in a.stages[1].layers) for a in mixed)
    assert len(seen) == 8  # every mix of conv and attention over the three layers of stage 2 teaches


def test_finetune_distils_from_every_teacher_each_recalibrated_for_itself(tiny_run, monkeypatch, tmp_path):
    folder, run = tiny_run
    config = load_config(str(folder / "tiny.yaml"))
    trained = load_trained(config, run / "supernet.pt")
    net, space, data = trained.supernet, trained.space, trained.data
    x, teacher = data.val.images[:16], space.largest()
    with torch.no_grad():
        with calibrated(net, teacher, data.train, config.train.bn_batches) as fresh:
            expected = fresh(x, teacher)
        assert torch.equal(finetune.calibrated_copy(net, teacher, data, config.train.bn_batches)(x, teacher), expected)
        # the supernet's own statistics are a blend over every arch it trained: the teacher needs its own
        assert not torch.allclose(net.eval()(x, teacher), expected, atol=1e-3)
    copied = []
    original = finetune.calibrated_copy
    monkeypatch.setattr(finetune, "calibrated_copy",
                        lambda n, arch, d, b: (copied.append(arch), original(n, arch, d, b))[1])
    finetune.finetune_subnet(net, space.smallest(), data, config.train, 1, 0, tmp_path / "tuned.pt", progress=False)
    assert copied == [*teachers(space, config.train), space.smallest()]


def test_bad_checkpoints_raise_checkpoint_error(mnist_space, tiny_data, tmp_path):
    path = tmp_path / "ck.pt"
    train_supernet(mnist_space, tiny_data, replace(TINY_TRAIN, epochs=1), 0, path, progress=False)
    half = tmp_path / "half.pt"
    half.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(half, mnist_space)
    with pytest.raises(CheckpointError, match="another space|other choices"):
        load_checkpoint(path, load_space("cifar_hybrid"))
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt", mnist_space)
    garbage = tmp_path / "garbage.pt"
    garbage.write_text("not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(garbage, mnist_space)


def test_layer_arch_helper_rejects_wrong_fields():
    with pytest.raises(Exception):
        LayerArch("conv", heads=2, mlp_ratio=2)


def test_scores_sum_top1_and_cross_entropy_over_batches():
    """Batches of 3 over 8 images: the scores must equal the whole split's top-1 and mean cross-entropy."""
    from supernet.calibration import accuracy, scores
    from supernet.data import Split

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    split = Split(torch.randn(8, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]))
    with torch.no_grad():
        logits = model(split.images)
    got = scores(model, split, batch_size=3)
    assert got.accuracy == pytest.approx(100.0 * float((logits.argmax(1) == split.labels).float().mean()))
    assert got.nll == pytest.approx(float(torch.nn.functional.cross_entropy(logits, split.labels)), rel=1e-6)
    assert accuracy(model, split, batch_size=3) == got.accuracy
