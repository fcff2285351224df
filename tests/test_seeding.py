"""a3d.core.seeding: the one seed mixer (training steps, epochs and ranks; the synthetic heads' keys)."""
import pytest

from a3d.core.seeding import mix_seed


def test_values_are_pinned():
    # Training runs and exported synthetic datasets are reproducible from their seed only while these stay.
    assert mix_seed(0, 0) == 7905728728188956330
    assert mix_seed(3, 1) == 7306510130689010281
    assert mix_seed(2**40 + 7, 123456) == 4163509113472909862


def test_nearby_pairs_give_distinct_far_apart_seeds():
    seeds = [mix_seed(s, i) for s in range(64) for i in range(64)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= x < 2**63 for x in seeds)
    # one step in either argument flips about half of the 63 bits
    flips = [bin(mix_seed(s, i) ^ mix_seed(s, i + 1)).count("1") for s in range(32) for i in range(32)]
    assert 28 < sum(flips) / len(flips) < 35


def test_narrower_seeds_are_the_low_bits():
    assert mix_seed(5, 7, bits=31) == mix_seed(5, 7) & (2**31 - 1) < 2**31
    for bad in (0, 64):
        with pytest.raises(ValueError, match="bits"):
            mix_seed(1, 2, bits=bad)


def test_the_generators_tensor_keys_are_the_same_mix():
    import torch

    from a3d.data.synth.draws import head_keys

    seed, ids = 2**40 + 7, torch.tensor([0, 1, 123456, 2**31 - 1])
    keys = head_keys(seed, ids).tolist()
    assert [k & (2**63 - 1) for k in keys] == [mix_seed(seed, int(i)) for i in ids]
