"""Flips and rotations must map a sample to a sample of the transformed operator.

The reference is the exact normalization: Γ of the transformed fields (on the transformed
grid) must equal the transformed Γ of the original fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import destandardize, transform_standardized, transform_standardized_tensor

from normcoef.data.standardization import (
    ChannelStatistics,
    compute_statistics,
    standardize,
)
from normcoef.data.transforms import (
    AUGMENTATIONS,
    SUFFIX,
    TRANSFORMS,
    Sample,
    check_augmentation_supported,
    expand_offline,
    parse_augmentation,
    random_transform,
    transform_cells,
    transform_fields,
    transform_sample,
    transformed_periodicity,
)
from normcoef.physics.diffusion import DiffusionOperator, open_faces
from normcoef.physics.normalization import brute_force_normalization

STEPS = 4
SHAPE = (10, 12)  # not square, so a rotation that confuses H and W fails
PERIODICITIES = [(True, False), (True, True), (False, False), (False, True)]
CONF = Path(__file__).resolve().parents[1] / "conf" / "augmentation"


def random_sample(seed: int, periodic_x: bool = True, periodic_y: bool = False) -> Sample:
    """Random coastline and islands; A in [0.2, 1.5] W, W in [0.5, 2]; closed faces 0."""
    rng = np.random.default_rng(seed)
    height, width = SHAPE
    mask = rng.random(SHAPE) > 0.2
    mask[0, : width // 2] = False
    mask[:3, 0] = False
    area = rng.uniform(0.5, 2.0, SHAPE)
    north, east = open_faces(mask, periodic_x, periodic_y)
    a_i = np.where(north, rng.uniform(0.2, 1.5, SHAPE) * area, 0.0)
    a_j = np.where(east, rng.uniform(0.2, 1.5, SHAPE) * area, 0.0)
    fields = np.stack([a_i, a_j, area])
    return Sample(fields, mask, exact_gamma(fields, mask, periodic_x, periodic_y))


def exact_gamma(fields: np.ndarray, mask: np.ndarray, periodic_x: bool, periodic_y: bool):
    op = DiffusionOperator(fields[:3], mask, STEPS, periodic_x, periodic_y)
    return brute_force_normalization(op)


def relative_error(gamma_hat: np.ndarray, gamma: np.ndarray, mask: np.ndarray) -> float:
    assert np.array_equal(gamma_hat[~mask], gamma[~mask])
    return float(np.max(np.abs(gamma_hat[mask] - gamma[mask]) / gamma[mask]))


def apply_in_turn(names: list[str], sample: Sample, periodic_x: bool, periodic_y: bool):
    for name in names:
        sample = transform_sample(name, *sample, periodic_x, periodic_y)
        periodic_x, periodic_y = transformed_periodicity(name, periodic_x, periodic_y)
    return sample, (periodic_x, periodic_y)


def assert_same_sample(left: Sample, right: Sample) -> None:
    for a, b in zip(left, right, strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        assert np.array_equal(a, b)


# --- Physics: the exact coefficients of the transformed fields -----------------------------


@pytest.mark.parametrize("periodic", PERIODICITIES, ids=lambda p: f"px{p[0]:d}py{p[1]:d}")
@pytest.mark.parametrize("name", TRANSFORMS)
def test_transformed_fields_have_transformed_exact_coefficients(name, periodic):
    sample = random_sample(1, *periodic)
    moved = transform_sample(name, *sample, *periodic)
    gamma = exact_gamma(moved.fields, moved.mask, *transformed_periodicity(name, *periodic))
    assert relative_error(gamma, moved.gamma, moved.mask) < 1e-10


def test_quarter_turns_swap_periodicity_and_flips_keep_it():
    assert transformed_periodicity("rot90", True, False) == (False, True)
    assert transformed_periodicity("rot270", True, False) == (False, True)
    for name in ("identity", "hflip", "vflip", "rot180"):
        assert transformed_periodicity(name, True, False) == (True, False)


def flipud_without_shift(fields, periodic_x, periodic_y):
    return np.flip(fields, axis=1)


def flipud_shifted_north(fields, periodic_x, periodic_y):
    out = np.flip(fields, axis=1).copy()
    out[0] = np.roll(out[0], 1, axis=0)
    return out


def fliplr_without_shift(fields, periodic_x, periodic_y):
    return np.flip(fields, axis=2)


def rot90_without_swap(fields, periodic_x, periodic_y):
    return np.rot90(fields, axes=(1, 2))


def rot90_swapped_without_shift(fields, periodic_x, periodic_y):
    return np.rot90(fields[[1, 0, 2]], axes=(1, 2))


WRONG = {
    "vflip": [flipud_without_shift, flipud_shifted_north],
    "hflip": [fliplr_without_shift],
    "rot90": [rot90_without_swap, rot90_swapped_without_shift],
}


@pytest.mark.parametrize(
    "name, wrong",
    [(name, wrong) for name, wrongs in WRONG.items() for wrong in wrongs],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_a_wrong_face_treatment_breaks_the_exact_coefficients(name, wrong):
    periodic = (True, False)
    sample = random_sample(2, *periodic)
    fields = wrong(sample.fields, *periodic)
    mask, gamma = transform_cells(name, sample.mask), transform_cells(name, sample.gamma)
    gamma_wrong = exact_gamma(fields, mask, *transformed_periodicity(name, *periodic))
    assert relative_error(gamma_wrong, gamma, mask) > 1e-3


def test_flips_put_the_canonical_zero_on_closed_boundary_faces():
    sample = random_sample(12, periodic_x=False, periodic_y=False)
    fields = sample.fields.copy()
    fields[0, -1, :] = 7.0  # north of the top row: closed, whatever value it holds
    fields[1, :, -1] = 7.0  # east of the last column: closed
    assert np.all(transform_fields("vflip", fields, False, False)[0, -1, :] == 0.0)
    assert np.all(transform_fields("hflip", fields, False, False)[1, :, -1] == 0.0)


def test_signed_distance_channel_moves_with_the_cells():
    sample = random_sample(3)
    distance = np.random.default_rng(3).standard_normal(SHAPE)
    fields = np.concatenate([sample.fields, distance[None]])
    for name in TRANSFORMS:
        moved = transform_fields(name, fields)
        assert np.array_equal(moved[3], transform_cells(name, distance))
        assert np.array_equal(moved[:3], transform_fields(name, sample.fields))


# --- Group structure: round trips and compositions -----------------------------------------


def test_rotations_move_cells_like_numpy_rot90():
    cells = np.arange(np.prod(SHAPE)).reshape(SHAPE)
    for k, name in enumerate(("identity", "rot90", "rot180", "rot270")):
        assert np.array_equal(transform_cells(name, cells), np.rot90(cells, k))
    assert np.array_equal(transform_cells("hflip", cells), cells[:, ::-1])
    assert np.array_equal(transform_cells("vflip", cells), cells[::-1])


ROUND_TRIPS = [
    ["hflip", "hflip"],
    ["vflip", "vflip"],
    ["rot180", "rot180"],
    ["rot90"] * 4,
    ["rot90", "rot270"],
    ["rot270", "rot90"],
]


@pytest.mark.parametrize("periodic", PERIODICITIES, ids=lambda p: f"px{p[0]:d}py{p[1]:d}")
@pytest.mark.parametrize("names", ROUND_TRIPS, ids="+".join)
def test_round_trips_give_back_fields_mask_and_gamma(names, periodic):
    sample = random_sample(4, *periodic)
    back, back_periodic = apply_in_turn(names, sample, *periodic)
    assert back_periodic == periodic
    assert_same_sample(back, sample)


@pytest.mark.parametrize(
    "names, equivalent",
    [
        (["hflip", "vflip"], "rot180"),
        (["vflip", "hflip"], "rot180"),
        (["rot90", "rot90"], "rot180"),
        (["rot90", "rot90", "rot90"], "rot270"),
        (["rot270", "rot270"], "rot180"),
    ],
    ids=lambda v: "+".join(v) if isinstance(v, list) else v,
)
def test_compositions_equal_the_named_transform(names, equivalent):
    periodic = (True, False)
    sample = random_sample(5, *periodic)
    composed, composed_periodic = apply_in_turn(names, sample, *periodic)
    assert composed_periodic == transformed_periodicity(equivalent, *periodic)
    assert_same_sample(composed, transform_sample(equivalent, *sample, *periodic))


# --- Standardized inputs -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["full", "partial"])
@pytest.mark.parametrize("name", TRANSFORMS)
def test_standardized_transform_destandardizes_to_the_transformed_fields(name, mode):
    sample = random_sample(6)
    stats = compute_statistics([sample.fields], [sample.mask], mode)
    image = standardize_sample(sample, stats, mode)
    moved, moved_mask = transform_standardized(name, image, sample.mask, stats, mode)
    expected = transform_fields(name, sample.fields)
    assert np.array_equal(moved_mask, transform_cells(name, sample.mask))
    cells = np.ones_like(moved_mask) if mode == "full" else moved_mask
    np.testing.assert_allclose(
        destandardize(moved, stats)[:, cells], expected[:, cells], rtol=1e-12, atol=1e-12
    )
    if mode == "partial":
        assert np.all(moved[:, ~moved_mask] == 0.0)


def standardize_sample(sample: Sample, stats: ChannelStatistics, mode: str) -> np.ndarray:
    return standardize(sample.fields, stats, mode, sample.mask)


def test_quarter_turn_standardizes_the_new_a_i_channel_with_the_a_i_statistics():
    sample = random_sample(7)
    # Very different statistics for A_i and A_j, so mixing them up shows.
    stats = ChannelStatistics(np.array([3.0, -1.0, 1.2]), np.array([2.0, 0.25, 0.4]))
    image = standardize_sample(sample, stats, "full")
    moved, _ = transform_standardized("rot90", image, sample.mask, stats, "full")
    # rot90 moves old A_j onto the new A_i faces by a permutation of the cells (x is
    # periodic), so over the whole grid the new channel 0 has the statistics of old A_j
    # standardized with A_i's mean and std.
    old_a_j = (sample.fields[1] - stats.mean[0]) / stats.std[0]
    assert moved[0].mean() == pytest.approx(old_a_j.mean(), rel=1e-12)
    assert moved[0].std() == pytest.approx(old_a_j.std(), rel=1e-12)
    # Rotating the standardized channels without restandardizing would be far off.
    naive = transform_fields("rot90", image)
    assert np.max(np.abs(naive[0] - moved[0])) > 1.0


def test_torch_tensors_are_transformed_like_arrays():
    sample = random_sample(8)
    stats = compute_statistics([sample.fields], [sample.mask], "partial")
    image = standardize_sample(sample, stats, "partial")
    expected, expected_mask = transform_standardized("rot270", image, sample.mask, stats, "partial")
    moved, moved_mask = transform_standardized_tensor(
        "rot270", torch.from_numpy(image).float(), torch.from_numpy(sample.mask), stats, "partial"
    )
    assert moved.dtype == torch.float32 and moved_mask.dtype == torch.bool
    np.testing.assert_allclose(moved.numpy(), expected, rtol=1e-6, atol=1e-6)
    assert np.array_equal(moved_mask.numpy(), expected_mask)


# --- Configuration -------------------------------------------------------------------------


def test_quarter_turns_are_refused_on_an_east_west_periodic_grid():
    for name in ("rot90", "rot270"):
        with pytest.raises(ValueError, match="periodic.*hflip, vflip, rot180"):
            check_augmentation_supported([name], True, False, (12, 12))


def test_quarter_turns_are_refused_on_a_non_square_grid():
    with pytest.raises(ValueError, match="10x12 grid into 12x10"):
        check_augmentation_supported(["rot90"], True, True, (10, 12))


def test_flips_are_supported_on_an_east_west_periodic_grid():
    check_augmentation_supported(["hflip", "vflip", "rot180"], True, False, (10, 12))
    check_augmentation_supported(AUGMENTATIONS, True, True, (12, 12))
    check_augmentation_supported(AUGMENTATIONS, False, False, (12, 12))


@pytest.mark.parametrize(
    "spec, names",
    [
        ("none", []),
        (None, []),
        ([], []),
        ("hflip", ["hflip"]),
        ("vflip", ["vflip"]),
        ("rot90", ["rot90"]),
        ("rot180", ["rot180"]),
        ("rot270", ["rot270"]),
        ("flips", ["hflip", "vflip", "rot180"]),
        ("all", ["hflip", "vflip", "rot90", "rot180", "rot270"]),
        (["vflip", "hflip", "vflip"], ["vflip", "hflip"]),
        (["flips", "rot90"], ["hflip", "vflip", "rot180", "rot90"]),
    ],
)
def test_parse_augmentation_presets_and_lists(spec, names):
    assert parse_augmentation(spec) == names


@pytest.mark.parametrize("spec", ["rot45", ["hflip", "transpose"], "identity"])
def test_parse_augmentation_rejects_unknown_names_listing_the_allowed_ones(spec):
    with pytest.raises(ValueError, match="choose from .*'flips'.*'rot270'"):
        parse_augmentation(spec)


def test_every_config_file_names_its_preset():
    files = sorted(CONF.glob("*.yaml"))
    assert {path.stem for path in files} == {"none", "flips", "all", *AUGMENTATIONS}
    for path in files:
        config = yaml.safe_load(path.read_text())
        assert set(config) == {"defaults", "transforms", "mode"}
        assert config["defaults"] == ["schema", "_self_"]
        assert parse_augmentation(config["transforms"]) == parse_augmentation(path.stem)
        assert config["mode"] == "offline"


def test_offline_expansion_keeps_originals_followed_by_their_copies():
    samples = [random_sample(9), random_sample(10)]
    expanded = expand_offline(samples, ["hflip", "vflip"])
    assert len(expanded) == 6
    for k, sample in enumerate(samples):
        copies = expanded[3 * k : 3 * k + 3]
        assert_same_sample(copies[0], sample)
        assert_same_sample(copies[1], transform_sample("hflip", *sample))
        assert_same_sample(copies[2], transform_sample("vflip", *sample))
    names = [f"id{SUFFIX[name]}" for name in ("identity", "hflip", "vflip", "rot90")]
    assert names == ["id", "id_flip_hor", "id_flip_vert", "id_90"]


def test_offline_expansion_refuses_unsupported_rotations():
    with pytest.raises(ValueError, match="rot90"):
        expand_offline([random_sample(11)], ["rot90"])


def test_online_transform_is_identity_or_one_of_the_transforms_uniformly():
    rng = np.random.default_rng(0)
    draws = [random_transform(rng, ["hflip", "vflip", "rot180"]) for _ in range(4000)]
    counts = {name: draws.count(name) for name in set(draws)}
    assert set(counts) == {"identity", "hflip", "vflip", "rot180"}
    assert all(abs(count - 1000) < 120 for count in counts.values())
    assert random_transform(rng, []) == "identity"
