"""A workdir records the resolved config and the command line that trained it; evaluation then
needs only ``--workdir`` (overrides still apply), and a config that no longer matches the
checkpoint is a clear error, for evaluation and for resuming training alike. No credential is
written into the record."""

import json
import os

import ml_collections
import pytest

from multimodal_jax.cli import common
from multimodal_jax.configs import recorded
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import run_record
from tests import tiny

COMMAND = ["train/__main__.py", "--config", "configs/clip_shapes.py", "--workdir", "w",
           "--config.data.hf_token=hf_abcdefghijklmnopqrstuvwxyz", "--api_key", "sk-"]


@pytest.fixture(scope="module")
def clip_run(shapes_data_dir, tmp_path_factory):
    """A tiny contrastive run of 2 steps, trained once for the module."""
    config = tiny.tiny_shapes_config(shapes_data_dir)
    config.update(total_steps=2, checkpoint_every_steps=2, eval_every_steps=2, log_every_steps=1)
    workdir = str(tmp_path_factory.mktemp("recorded") / "clip")
    metrics = loop.train_and_evaluate(config, workdir, command=COMMAND)
    return config, workdir, metrics


def test_training_records_the_resolved_config_and_its_command(clip_run):
    config, workdir, _ = clip_run
    loaded = run_record.load(workdir)
    assert loaded.to_dict() == run_record.with_absolute_paths(config).to_dict()
    assert loaded.data.caption_templates == tuple(config.data.caption_templates)  # tuples back
    assert os.path.isabs(loaded.data.data_dir)
    lines = [json.loads(line) for line in open(os.path.join(workdir, "commands.jsonl"))]
    assert len(lines) == 1 and lines[0]["start_step"] == 0 and lines[0]["processes"] == 1
    argv = lines[0]["argv"]
    assert argv[:5] == COMMAND[:5]
    assert argv[5] == "--config.data.hf_token=REDACTED"  # a secret-named flag
    text = open(os.path.join(workdir, "config.json")).read()
    assert "hf_abcdefghij" not in text and "hf_abcdefghij" not in json.dumps(lines)


def test_secrets_never_reach_the_record():
    config = ml_collections.ConfigDict(dict(
        task="contrastive", data=dict(data_dir="https://alice:s3cret@example.com/tfds",
                                      hub_token="abc", name="x"),
        wandb=dict(api_key="0123", project="p"), note="hf_ABCDEFGHIJKLMNOPQRSTUVWX",
        tokenizer=dict(kind="sentencepiece", path="", max_len=8)))
    record = json.loads(run_record.record_text(config))
    text = json.dumps(record)
    for secret in ("s3cret", "alice", '"abc"', "0123", "hf_ABCDEF"):
        assert secret not in text, secret
    assert record["config"]["tokenizer"]["kind"] == "sentencepiece"  # "token..." fields stay
    assert record["config"]["data"]["data_dir"] == "https://REDACTED@example.com/tfds"
    assert record["redacted"] == ["data.data_dir", "data.hub_token", "note", "wandb.api_key"]
    assert run_record.redact_argv(["--x.password", "pw", "--y=ghp_0123456789abcdefghij0123"]) == \
        ["--x.password", "pw", "--y=REDACTED"]


def test_evaluate_needs_only_the_workdir(clip_run):
    config, workdir, trained = clip_run
    argv = common.with_recorded_config(["evaluate", f"--workdir={workdir}",
                                        "--config.evaluation.batch_size=32"])
    assert argv[1] == f"--config={common.recorded_config_file()}:{workdir}"
    evaluated = evaluate_checkpoint.evaluate_latest(recorded.get_config(workdir), workdir)
    assert evaluated["step"] == 2
    for key in ("zeroshot/test/top1", "retrieval/test/i2t_r1"):
        assert evaluated[key] == trained[key]


def test_a_workdir_without_a_record_asks_for_a_config(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        common.with_recorded_config(["evaluate", "--workdir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No --config given, and The workdir") and "config.json" in err


def test_a_config_that_no_longer_matches_the_checkpoint_is_an_error(clip_run):
    config, workdir, _ = clip_run
    other = recorded.get_config(workdir)
    other.model.image.width = 64
    other.data.mean = (0.4, 0.4, 0.4)
    with pytest.raises(run_record.RecordError) as error:
        evaluate_checkpoint.evaluate_latest(other, workdir)
    message = str(error.value)
    assert "config.model.image.width=64 here, 32 in the record" in message
    assert "config.data.mean=(0.4, 0.4, 0.4) here, (0.5, 0.5, 0.5) in the record" in message
    # What does not change the model's meaning may differ: batch sizes, dtype, steps.
    same = recorded.get_config(workdir)
    same.evaluation.batch_size, same.model.dtype, same.total_steps = 32, "bfloat16", 9
    run_record.check_matches(same, workdir)
    # Resuming training with another tokenizer is refused before anything is restored.
    resumed = recorded.get_config(workdir)
    resumed.total_steps = 3
    resumed.tokenizer.vocab_size = 300
    with pytest.raises(run_record.RecordError, match="config.tokenizer.vocab_size=300 here"):
        loop.train_and_evaluate(resumed, workdir)
