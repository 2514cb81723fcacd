import itertools
import subprocess
import sys

import numpy as np
import pytest

from search_space import Arch, HybridSpace, SearchSpaceError, arch_costs
from search_space.schema import build
from tests.conftest import REPO


def test_round_trips_over_random_archs(hybrid_space):
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = hybrid_space.sample(rng)
        assert hybrid_space.contains(arch)
        assert hybrid_space.decode(hybrid_space.encode(arch)) == arch
        assert Arch.from_str(arch.to_str()) == arch


def test_masked_genes_do_not_change_the_arch(hybrid_space):
    rng = np.random.default_rng(1)
    lower, upper = hybrid_space.bounds()
    for _ in range(100):
        genes = rng.integers(lower, upper + 1)
        arch = hybrid_space.decode(genes)
        canonical = hybrid_space.encode(arch)
        masked = np.flatnonzero(canonical != genes)
        assert all(genes[i] != 0 for i in masked)  # only masked genes differ, and encode zeroes them
        noisy = canonical.copy()
        noisy[masked] = rng.integers(lower[masked], upper[masked] + 1)
        assert hybrid_space.decode(noisy) == arch


def test_every_sample_has_positive_costs_and_the_largest_costs_most(hybrid_space):
    rng = np.random.default_rng(2)
    largest = arch_costs(hybrid_space, hybrid_space.largest())
    smallest = arch_costs(hybrid_space, hybrid_space.smallest())
    for _ in range(300):
        c = arch_costs(hybrid_space, hybrid_space.sample(rng))
        assert min(c.params, c.macs, c.bitops, c.size_mb) > 0
        assert smallest.params <= c.params <= largest.params
        assert smallest.size_mb <= c.size_mb <= largest.size_mb
        assert smallest.bitops <= c.bitops <= largest.bitops


def _tiny_space() -> HybridSpace:
    return build(HybridSpace, {
        "name": "tiny", "input": {"channels": 1, "size": 8, "classes": 2}, "stem": {"channels": 4},
        "stages": [{"depth": [1, 2], "width": [4, 8], "blocks": ["conv", "attn"], "kernel": [3], "expand": [2],
                    "heads": [1, 2], "mlp_ratio": [2]}],
        "quantization": {"weight_bits": [4, 32], "act_bits": [8]},
    }, "tiny")


def test_size_equals_a_brute_force_count():
    space = _tiny_space()
    lower, upper = space.bounds()
    distinct = {space.decode(g) for g in itertools.product(*[range(lo, up + 1) for lo, up in zip(lower, upper)])}
    assert space.size() == len(distinct) == 2 * (6 + 6**2)


def test_extremes_are_in_the_space(hybrid_space):
    for arch in (hybrid_space.largest(), hybrid_space.smallest()):
        assert hybrid_space.contains(arch)
    largest = hybrid_space.largest()
    assert all(layer.wbits == 32 and layer.abits == 32 for layer in largest.layers())
    assert all(layer.wbits == min(hybrid_space.quantization.weight_bits) for layer in hybrid_space.smallest().layers())


def test_features_have_fixed_length_and_zero_masked_slots(mnist_space):
    rng = np.random.default_rng(3)
    lengths = {len(mnist_space.features(mnist_space.sample(rng))) for _ in range(50)}
    assert len(lengths) == 1
    shallow = Arch.from_str("c16:conv_k3_e2_w4a8|c32:conv_k3_e2_w4a8")
    f = mnist_space.features(shallow)
    # stage 0 has 2 slots of 8 features after its 2 stage features; slot 1 is masked
    assert np.all(f[2 + 8: 2 + 16] == 0)


def test_costs_shrink_with_bit_width_exactly_as_the_formula_says(mnist_space):
    a32 = Arch.from_str("c16:conv_k3_e2_w32a32|c32:conv_k3_e2_w32a32")
    a8 = Arch.from_str("c16:conv_k3_e2_w8a32|c32:conv_k3_e2_w8a32")
    c32, c8 = arch_costs(mnist_space, a32), arch_costs(mnist_space, a8)
    # stage 0 layer: expand 16*32, dw 32*9, project 32*16 weights; stage 1: 16*32, 32*9, 32*32
    quantized_weights = (16 * 32 + 32 * 9 + 32 * 16) + (16 * 32 + 32 * 9 + 32 * 32)
    assert c32.params == c8.params
    assert c32.size_mb - c8.size_mb == pytest.approx(quantized_weights * (32 - 8) / 8 / 1e6)


@pytest.mark.parametrize("text", ["", "c16", "c16:conv_k3", "c16:pool_k3_e2_w8a8", "x16:conv_k3_e2_w8a8",
                                  "c16:conv_k3_e2_w3a8", "c16:attn_h0_m2_w8a8"])
def test_bad_arch_strings_raise_search_space_error(text):
    with pytest.raises(SearchSpaceError):
        Arch.from_str(text)


def test_arch_outside_space_is_rejected(mnist_space):
    with pytest.raises(SearchSpaceError, match=r"'mnist_hybrid': stage 1 width 64 is not one of \[16, 24\]"):
        mnist_space.arch_from_str("c64:conv_k3_e2_w8a8|c32:conv_k3_e2_w8a8")
    with pytest.raises(SearchSpaceError, match=r"stage 2 layer 2 wbits 6 is not one of \[4, 8, 32\]"):
        mnist_space.arch_from_str("c16:conv_k3_e2_w8a8|c32:conv_k3_e2_w8a8,attn_h2_m2_w6a8")
    with pytest.raises(SearchSpaceError):
        mnist_space.decode([99] * len(mnist_space.bounds()[1]))
    # before: "wbits=2 is not one of (4, 6, 8, 32)", read as the space's choices, which are [4, 8, 32]
    with pytest.raises(SearchSpaceError, match=r"^wbits=2: hynas quantizes to 4, 6, 8 or 32 bits \(32: not quantized"):
        mnist_space.arch_from_str("c16:conv_k3_e2_w2a8|c32:conv_k3_e2_w8a8")


def test_importing_search_space_does_not_import_torch():
    code = "import sys, search_space, search_space.summary; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_feature_views_split_choices_from_analytic_costs(mnist_space):
    from search_space.costs import arch_costs

    arch = mnist_space.largest()
    f, views = mnist_space.features(arch), mnist_space.feature_views()
    assert np.array_equal(np.concatenate(list(views.values())), np.arange(len(f)))
    assert f[views["analytic-costs"]][0] == pytest.approx(np.log10(arch_costs(mnist_space, arch).params))
