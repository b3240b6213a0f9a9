"""Run configs (built-in YAML, overrides, validation) and the data-parallel sharding of the
keyed sampler."""

from __future__ import annotations

import itertools

import pytest
import yaml

from vltseg_ros.data.sampler import InfiniteKeyedSampler
from vltseg_ros.errors import ConfigError, DatasetError
from vltseg_ros.training.run_config import (
    RunConfig,
    available_run_configs,
    load_run_config,
    resolve_model_config,
)


def test_builtin_run_configs_follow_the_reference():
    names = available_run_configs()
    assert {
        "tiny",
        "vltseg_eva02-l-14_gta5-cityscapes_512",
        "vltseg_eva02-l-14_cityscapes_1024",
        "vltseg_vit-l-14_gta5-cityscapes_512",
    } <= set(names)
    gta = load_run_config("vltseg_eva02-l-14_gta5-cityscapes_512")
    assert (gta.source_name, gta.scale, gta.crop_size) == ("gta5", (1280, 720), (512, 512))
    assert (gta.train.batch_size, gta.train.iterations, gta.train.lr) == (16, 5000, 1e-4)
    assert (gta.train.weight_decay, gta.train.backbone_lr_mult, gta.train.grad_clip) == (
        0.05,
        0.1,
        0.01,
    )
    assert (gta.train.constant_iterations, gta.train.poly_power, gta.model.drop_path) == (
        500,
        0.9,
        0.2,
    )
    assert [t.split(":")[0] for t in gta.data.targets] == ["cityscapes", "bdd100k", "mapillary"]
    model = resolve_model_config(gta)
    assert model.encoder.drop_path == 0.2 and model.inference.stride == (426, 426)
    assert model.name == "vltseg-eva02-l-512"  # the architecture the reference trains
    assert gta.loss.num_points == 12544 and gta.loss.no_object_weight == 0.1
    city = load_run_config("vltseg_eva02-l-14_cityscapes_1024")
    assert (city.scale, city.crop_size, city.train.batch_size, city.train.iterations) == (
        (2048, 1024),
        (1024, 1024),
        8,
        20000,
    )
    assert city.data.targets[0].startswith("acdc:")
    assert resolve_model_config(city).name == "vltseg-eva02-l-1024"


def test_overrides_are_yaml_and_round_trip(tmp_path):
    run = load_run_config(
        "tiny",
        [
            "train.iterations=7",
            "train.lr=1e-2",  # YAML reads this as a string; it is accepted as a number
            "data.source=gta5:/data/gta5",
            "data.targets=cityscapes:/a,acdc:/b",
            "data.crop_size=null",
            "model.inference.stride=[32, 32]",
        ],
    )
    assert run.train.iterations == 7 and run.train.lr == 0.01
    assert run.data.targets == ("cityscapes:/a", "acdc:/b")
    assert run.crop_size == (512, 512)  # the reference's GTA5 crop
    assert resolve_model_config(run).inference.stride == (32, 32)
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(run.to_dict()))
    again = load_run_config(path)
    assert again == run
    assert RunConfig.from_dict(run.to_dict()) == run


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.iterations=0", "train.iterations"),
        ("train.itterations=5", "unknown key"),
        ("train.amp_dtype=fp8", "one of"),
        ("train.batchnorm=group", "one of"),
        ("data.source=kitti:/x", "data.source"),
        ("data.targets=[cityscapes]", "data.targets[0]"),
        ("model.config=nope", "model.config"),
        ("model.inference.stride=[999,999]", "stride"),
        ("train.lr=fast", "train.lr must be a number"),
        ("eval.interval=-1", "eval.interval"),
        ("checkpoint.interval=0", "checkpoint.interval"),
        ("loss.num_points=0", "loss.num_points"),
        ("loss.dice_weight=-1", "loss.dice_weight"),
        ("loss.no_object_weight=1.5", "loss.no_object_weight"),
        ("loss.oversample_ratio=0.5", "loss.oversample_ratio"),
        ("loss.importance_ratio=2", "loss.importance_ratio"),
        ("noequals", "KEY=VALUE"),
        ("train.iterations.x=1", "is a value"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_run_config("tiny", [override])


def test_unknown_config_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="built-in"):
        load_run_config("no-such-run")
    with pytest.raises(ConfigError, match="does not exist"):
        load_run_config(tmp_path / "missing.yaml")


def test_sampler_shards_are_slices_of_the_global_batches():
    size, batch, world = 7, 6, 3
    single = list(itertools.islice(InfiniteKeyedSampler(size, seed=2), 4 * batch))
    shards = [
        list(
            itertools.islice(
                InfiniteKeyedSampler(size, seed=2, rank=r, world_size=world, chunk=batch // world),
                4 * batch // world,
            )
        )
        for r in range(world)
    ]
    for step in range(4):
        local = batch // world
        joined = [s for r in range(world) for s in shards[r][step * local : (step + 1) * local]]
        assert joined == single[step * batch : (step + 1) * batch]
    resumed = InfiniteKeyedSampler(size, seed=2, start=12, rank=1, world_size=3, chunk=2)
    assert list(itertools.islice(resumed, 2)) == single[14:16]
    with pytest.raises(DatasetError, match="multiple of the global batch"):
        InfiniteKeyedSampler(size, start=5, rank=0, world_size=3, chunk=2)
    with pytest.raises(DatasetError):
        InfiniteKeyedSampler(size, rank=3, world_size=3)


def test_sampler_shuffles_each_pass_differently_and_reproducibly() -> None:
    sampler = InfiniteKeyedSampler(50, seed=3)
    first, second = sampler.order(0), sampler.order(1)
    for order in (first, second):  # each pass is a permutation of every sample
        assert sorted(order.tolist()) == list(range(50))
    assert first.tolist() != list(range(50))  # shuffled, not in order
    assert first.tolist() != second.tolist()  # another order each pass
    assert InfiniteKeyedSampler(50, seed=3).order(1).tolist() == second.tolist()
    assert InfiniteKeyedSampler(50, seed=4).order(0).tolist() != first.tolist()
    drawn = [index for index, _ in itertools.islice(sampler, 100)]
    assert drawn == [*first.tolist(), *second.tolist()]
    unshuffled = InfiniteKeyedSampler(50, seed=3, shuffle=False)
    assert unshuffled.order(7).tolist() == list(range(50))
