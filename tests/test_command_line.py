"""The command line as users write it: list fields (class names, templates, splits, rules, a
mixture) parse from ``a,b,c`` and from Python literals and are checked for type and emptiness
before anything runs; FSDP is settable on the small configs; and the progress line a run prints
every ``log_every_steps`` when stderr is not a terminal."""

import logging
import sys
from unittest import mock

import pytest
from absl import flags
from ml_collections import config_flags

from multimodal_jax import fields
from multimodal_jax.cli import common
from multimodal_jax.evaluation import contrastive_eval
from multimodal_jax.runtime import config_checks
from multimodal_jax.runtime import progress


def _parse(*overrides, config="configs/clip_shapes_smoke.py"):
    """The config ``--config=config`` and ``overrides`` give, parsed as the commands do
    (config_flags reads the overrides from ``sys.argv``)."""
    values = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", None, "", flag_values=values,
                                             lock_config=True)
    argv = ["mmjax-train", f"--config={config}", *overrides]
    with mock.patch.object(sys, "argv", argv):
        common.parse_flags(argv, values)
    return holder.value


def _checked(data_dir, *overrides):
    config = _parse(f"--config.data.data_dir={data_dir}", *overrides)
    config_checks.validate(config, data_dir + "/run")
    return config


def test_lists_parse_as_users_write_them(shapes_data_dir):
    config = _checked(shapes_data_dir, "--config.evaluation.class_names=red circle, blue square",
                      "--config.evaluation.zeroshot_splits=test,heldout",
                      "--config.evaluation.templates=a photo of a {}.,a {}.",
                      "--config.data.caption_templates=('a {}, drawn.', 'the {}.')",
                      "--config.data.mean=0.5,0.5,0.5",
                      "--config.parallel.fsdp=2", "--config.parallel.rules=(('.*', 'fsdp'),)")
    assert contrastive_eval.class_names_and_templates(config) == (
        ["red circle", "blue square"], ["a photo of a {}.", "a {}."])
    assert config.evaluation.zeroshot_splits == ("test", "heldout")
    assert config.data.caption_templates == ("a {}, drawn.", "the {}.")
    assert config.data.mean == (0.5, 0.5, 0.5)
    assert config.parallel.rules == ((".*", "fsdp"),)
    literal = _parse("--config.evaluation.class_names=['red circle', 'blue square']",
                     "--config.evaluation.zeroshot_splits=", "--config.data.mixture=(('a', 2), ('b', 1))")
    assert contrastive_eval.class_names_and_templates(literal)[0] == ["red circle", "blue square"]
    assert literal.evaluation.zeroshot_splits == () and literal.data.mixture == (("a", 2), ("b", 1))
    repeated = _parse("--config.evaluation.zeroshot_splits=test", "--config.evaluation.zeroshot_splits=heldout")
    assert repeated.evaluation.zeroshot_splits == ("test", "heldout")


@pytest.mark.parametrize("override,message", [
    ("--config.evaluation.class_names=", "config.evaluation.class_names is empty"),
    ("--config.evaluation.class_names=red circle,,blue square", "must hold non-empty strings, got ''"),
    ("--config.evaluation.zeroshot_splits=1,2", "config.evaluation.zeroshot_splits must hold non-empty strings, got 1"),
    ("--config.evaluation.templates=a photo", "'a photo' has no '{}' where the class name goes"),
    ("--config.data.caption_templates=", "config.data.caption_templates is empty"),
    ("--config.data.mean=0.5,0.5", "config.data.mean must be 3 numbers"),
    ("--config.parallel.fsdp=2", "config.parallel.fsdp=2 with config.parallel.rules=() shards nothing"),
])
def test_bad_lists_are_clear_errors_before_anything_runs(shapes_data_dir, override, message):
    with pytest.raises(config_checks.ConfigError) as info:
        _checked(shapes_data_dir, override)
    assert message in str(info.value)


def test_unparsable_list_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as info:
        _parse("--config.evaluation.zeroshot_splits=('test',")
    assert info.value.code == 2
    assert "is not a Python literal; write a list as a,b,c" in capsys.readouterr().err


def test_parse_list_and_string_list():
    assert fields.parse_list(" a , b c ,d") == ("a", "b c", "d")
    assert fields.parse_list("1,2.5,x") == (1, 2.5, "x")
    assert fields.parse_list("'a, b'") == ("a, b",) and fields.parse_list("") == ()
    assert fields.string_list("red circle,blue square", "x") == ("red circle", "blue square")
    with pytest.raises(ValueError, match="x must be a list of strings, got 3"):
        fields.string_list(3, "x")


def test_progress_lines_when_stderr_is_not_a_terminal(caplog):
    clock = iter([100.0, 110.0, 120.0]).__next__
    with caplog.at_level(logging.INFO, logger="multimodal_jax"):
        bar = progress.Progress(total=400, start=100, reporting=True, terminal=False, clock=clock)
        for _ in range(50):
            bar.update()
        bar.report(150, 1.23456)
        bar.report(200, 0.5)
        bar.close()
        progress.Progress(total=400, start=100, reporting=False, terminal=False).report(150, 1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "step 150/400: loss 1.2346, 5.00 steps/s, ETA 0:00:50",
        "step 200/400: loss 0.5000, 5.00 steps/s, ETA 0:00:40"]
    assert progress.line(10, 10, 0.1, 0.0) == "step 10/10: loss 0.1000, 0.00 steps/s, ETA unknown"
