import json

import pytest
import torch

from socmap.catalog import load_catalog
from socmap.errors import BandMismatch, ConfigError
from socmap.model.features import FeatureSpec
from socmap.model.network import NetworkConfig, SocNet, mc_dropout

SMALL = {"enc_dim": 4, "emb_dim": 2, "fusion_dim": 8, "depth_dim": 4, "head": (16, 8)}


def small_config(**kw):
    return NetworkConfig(groups={"climate": 2, "terrain": 1}, vocab_sizes={"lc": 4}, **SMALL, **kw)


def inputs(n=32, n_cont=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    cont = torch.randn(n, n_cont, generator=g)
    mask = (torch.rand(n, n_cont, generator=g) < 0.2).float()
    cont = cont * (1 - mask)
    cat = torch.randint(0, 4, (n, 1), generator=g)
    depth = torch.rand(n, 3, generator=g)
    return cont, mask, cat, depth


def test_config_json_round_trip_and_validation():
    cfg = small_config(target_shift=2.5, target_scale=0.8)
    assert NetworkConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ConfigError, match="unknown keys"):
        NetworkConfig.from_dict({**cfg.to_dict(), "layers": 3})
    with pytest.raises(ConfigError, match=r"dropout \(0\.2,\)"):
        small_config(dropout=(0.2,))
    with pytest.raises(ConfigError, match="logvar_range"):
        small_config(logvar_range=(3.0, -3.0))
    with pytest.raises(ConfigError, match="at least one"):
        NetworkConfig(groups={})


def test_default_size_on_global_covariates_is_gsoilcpm_scale():
    spec = FeatureSpec.from_catalog(load_catalog("global_10arcmin"))
    cfg = NetworkConfig.from_spec(spec)
    net = SocNet(cfg)
    enc = (4 * 16 + 16) * 2 + (2 * 16 + 16)  # climate, terrain: [2 values, 2 masks]; vegetation
    emb = (21 + 9) * 4
    fusion = (3 * 16 + 2 * 4) * 128 + 128
    depth = (3 * 16 + 16) + (16 * 256 + 256)
    head = (128 * 256 + 256) + (256 * 128 + 128) + (128 * 2 + 2)
    assert net.count_parameters() == enc + emb + fusion + depth + head
    # GSoilCPM reports ~88k parameters; ours is of the same order.
    assert 60_000 < net.count_parameters() < 120_000


def test_forward_is_trunk_then_head_and_logvar_is_clamped():
    cfg = small_config(logvar_range=(-1.0, 0.5))
    net = SocNet(cfg).eval()
    x = inputs()
    mean, logvar = net(*x)
    assert mean.shape == logvar.shape == (32,)
    m2, lv2 = net.head(net.trunk(*x))
    assert torch.equal(mean, m2) and torch.equal(logvar, lv2)
    with torch.no_grad():
        net.out.bias[1] = 100.0
    assert torch.all(net(*x)[1] == 0.5)
    with torch.no_grad():
        net.out.bias[1] = -100.0
    assert torch.all(net(*x)[1] == -1.0)


def test_output_scaling_uses_target_statistics():
    a = SocNet(small_config()).eval()
    b = SocNet(small_config(target_shift=2.0, target_scale=3.0)).eval()
    x = inputs()
    ma, la = a(*x)
    mb, lb = b(*x)
    torch.testing.assert_close(mb, 2.0 + 3.0 * ma)
    torch.testing.assert_close(lb, la + 2 * torch.log(torch.tensor(3.0)))


def test_missing_indicator_reaches_the_network():
    net = SocNet(small_config()).eval()
    cont, mask, cat, depth = inputs()
    flipped = mask.clone()
    flipped[:, 0] = 1 - flipped[:, 0]
    assert not torch.equal(net(cont, mask, cat, depth)[0], net(cont, flipped, cat, depth)[0])


def test_depth_conditioning_changes_the_output():
    net = SocNet(small_config()).eval()
    cont, mask, cat, depth = inputs()
    assert not torch.equal(net(cont, mask, cat, depth)[0], net(cont, mask, cat, depth + 0.5)[0])


def test_wrong_input_width_raises_band_mismatch():
    net = SocNet(small_config())
    cont, mask, cat, depth = inputs(n_cont=4)
    with pytest.raises(BandMismatch, match="expects 3 columns"):
        net(cont, mask, cat, depth)


def test_init_is_seeded_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b, c = SocNet(small_config(), seed=1), SocNet(small_config(), seed=1), SocNet(small_config())
    assert torch.equal(torch.random.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["fusion.weight"], sc["fusion.weight"])


def test_add_group_leaves_outputs_bit_for_bit_unchanged():
    net = SocNet(small_config()).eval()
    cont, mask, cat, depth = inputs(n=64)
    before = net(cont, mask, cat, depth)
    n_params = net.count_parameters()
    net.add_group("regional", 2, seed=5)
    assert net.config.added_groups == {"regional": 2}
    assert net.config.n_continuous == 5
    assert net.count_parameters() == n_params + (4 * 4 + 4) + 4 * 8
    extra = torch.randn(64, 2, generator=torch.Generator().manual_seed(9)) * 10
    extra_mask = torch.zeros(64, 2)
    after = net(torch.cat([cont, extra], 1), torch.cat([mask, extra_mask], 1), cat, depth)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    # ... and the new group can learn: the zero adapter gets a gradient.
    net.train()
    mean, _ = net(torch.cat([cont, extra], 1), torch.cat([mask, extra_mask], 1), cat, depth)
    mean.sum().backward()
    assert net.adapters[0].weight.grad is not None
    assert net.adapters[0].weight.grad.abs().sum() > 0
    with pytest.raises(BandMismatch, match="already exists"):
        net.add_group("climate", 1)


def test_added_group_survives_config_rebuild():
    net = SocNet(small_config())
    net.add_group("regional", 2)
    rebuilt = SocNet(NetworkConfig.from_dict(net.config.to_dict()))
    assert rebuilt.state_dict().keys() == net.state_dict().keys()
    rebuilt.load_state_dict(net.state_dict())


def test_mc_dropout_flips_only_dropout_modules_and_restores():
    net = SocNet(small_config()).train()
    net.head_in.train(False)  # an odd starting state must come back as it was
    before = {name: m.training for name, m in net.named_modules()}
    with mc_dropout(net):
        for m in net.modules():
            assert m.training == isinstance(m, torch.nn.Dropout)
        h = net.trunk(*inputs())
        a, b = net.head(h)[0], net.head(h)[0]
        assert not torch.equal(a, b)
    assert {name: m.training for name, m in net.named_modules()} == before
    net.eval()
    h = net.trunk(*inputs())
    assert torch.equal(net.head(h)[0], net.head(h)[0])


def test_added_categorical_bands_start_at_zero_and_can_learn():
    net = SocNet(small_config()).eval()
    cont, mask, cat, depth = inputs(n=64)
    before = net(cont, mask, cat, depth)
    net.add_group("regional", 1, seed=5, vocab_sizes={"geology": 6})
    assert net.config.added_vocab_sizes == {"geology": 6}
    assert net.config.all_vocab_sizes == {"lc": 4, "geology": 6}
    extra = torch.randn(64, 1, generator=torch.Generator().manual_seed(9))
    geology = torch.randint(0, 6, (64, 1), generator=torch.Generator().manual_seed(3))
    args = (torch.cat([cont, extra], 1), torch.cat([mask, torch.zeros(64, 1)], 1))
    after = net(*args, torch.cat([cat, geology], 1), depth)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    # row 0 (missing or unknown class) is fixed at zero; known classes learn
    assert net.added_embeddings[0].padding_idx == 0
    net.train()
    net(*args, torch.cat([cat, geology], 1), depth)[0].sum().backward()
    assert net.embedding_adapters[0].weight.grad.abs().sum() > 0
    assert net.added_embeddings[0].weight.grad[0].abs().sum() == 0
    rebuilt = SocNet(NetworkConfig.from_dict(net.config.to_dict()))
    rebuilt.load_state_dict(net.state_dict())
    # a group of categorical bands only, and the errors
    net2 = SocNet(small_config())
    net2.add_group("regional", 0, vocab_sizes={"geology": 3})
    assert net2.config.added_groups == {} and net2.config.added_vocab_sizes == {"geology": 3}
    with pytest.raises(ConfigError, match="n_bands must be >= 1"):
        SocNet(small_config()).add_group("regional", 0)
    with pytest.raises(ConfigError, match="repeat base names"):
        NetworkConfig(groups={"g": 1}, vocab_sizes={"lc": 3}, added_vocab_sizes={"lc": 3})


@pytest.mark.parametrize("head", [(16,), (16, 8), (16, 8, 8)])
def test_map_passes_equals_masked_head_per_pass_and_depth(head):
    """Folding FiLM and the fixed masks into the weights changes nothing but rounding."""
    cfg = NetworkConfig(
        groups={"climate": 2, "terrain": 1},
        vocab_sizes={"lc": 4},
        **{**SMALL, "head": head, "dropout": (0.3,) * len(head)},
    )
    net = SocNet(cfg, seed=3).eval()
    cont, mask, cat, _ = inputs(n=20)
    depth = torch.tensor([[0.0, 0.05, 0.1], [0.05, 0.15, 0.5], [0.3, 1.0, 1.9]])
    masks = net.dropout_masks(5, torch.Generator().manual_seed(1))
    with torch.no_grad():
        fused = net.fuse(cont, mask, cat)
        mean, logvar = net.map_passes(fused, depth, masks)
        assert mean.shape == logvar.shape == (5, 3, 20)
        for d in range(3):
            h = net.condition(fused, depth[d].expand(20, -1))
            for t in range(5):
                x = h
                for i, layer in enumerate([*net.head_layers, net.out]):
                    x = layer(x * masks[i][t])
                    x = torch.relu(x) if i < len(head) - 1 else x
                m, lv = net._output(x)
                torch.testing.assert_close(mean[t, d], m, rtol=1e-5, atol=1e-5)
                torch.testing.assert_close(logvar[t, d], lv, rtol=1e-5, atol=1e-5)
    # A pass's result for a pixel does not depend on the other pixels in the batch
    # (up to the rounding of differently blocked matmuls).
    with torch.no_grad():
        part, _ = net.map_passes(fused[7:9], depth, masks)
    torch.testing.assert_close(part, mean[:, :, 7:9], rtol=1e-6, atol=1e-6)


def test_periodic_embeddings_feed_sin_and_cos_of_learned_frequencies():
    cfg = small_config(periodic=3, periodic_sigma=0.5)
    net = SocNet(cfg, seed=1).eval()
    # Two groups (2 and 1 bands): [values, flags, 3 sin and 3 cos per band] per encoder.
    assert [e.in_features for e in net.encoders] == [16, 8]
    assert [tuple(f.shape) for f in net.frequencies] == [(2, 3), (1, 3)]
    cont, mask, cat, depth = inputs()
    parts = []
    for g, (a, b) in enumerate([(0, 2), (2, 3)]):
        x = cont[:, a:b]
        phase = torch.stack(
            [2 * torch.pi * x[:, j : j + 1] * net.frequencies[g][j] for j in range(b - a)], 1
        )  # (B, bands, 3), band-major as in the encoder's columns
        sin, cos = phase.sin().flatten(1), phase.cos().flatten(1)
        parts.append(net.encoders[g](torch.cat([x, mask[:, a:b], sin, cos], 1)))
    parts.append(net.embeddings[0](cat[:, 0]))
    by_hand = torch.relu(net.fusion(torch.cat(parts, 1)))
    with torch.no_grad():
        torch.testing.assert_close(net.fuse(cont, mask, cat), by_hand.detach())
    # The frequencies learn, and the outputs depend on them.
    mean, _ = net.train()(cont, mask, cat, depth)
    mean.sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in net.frequencies)
    # A periodic network round-trips through its config and state dict.
    rebuilt = SocNet(NetworkConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))), seed=7)
    rebuilt.load_state_dict(net.state_dict())
    x = inputs(seed=4)
    assert torch.equal(rebuilt.eval()(*x)[0], net.eval()(*x)[0])
    with pytest.raises(ConfigError, match="periodic"):
        small_config(periodic=-1)
    with pytest.raises(ConfigError, match="periodic_sigma"):
        small_config(periodic=2, periodic_sigma=0.0)
