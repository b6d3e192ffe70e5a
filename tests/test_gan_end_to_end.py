"""The GAN end to end on the tiny dataset: ``configs/gan_shapes.py`` shrunk trains from
nothing (its contrastive, evaluation-encoder and classifier runs first, each into a sub-folder),
writes a sample grid at every evaluation (and to TensorBoard), and ``train.evaluate``'s code
path prints the gan/* JSON line from the checkpoint; the class-conditional variant then runs
on the same prerequisite runs."""

import json
import os

import pytest

from benchmarks import gan_alignment_gap
from benchmarks import gan_truncation
from multimodal_jax import workdir as workdir_lib
from multimodal_jax.cli import common as cli
from multimodal_jax.runtime import evaluate_checkpoint
from multimodal_jax.runtime import loop
from multimodal_jax.runtime import prerequisites
from tests import runs
from tests import tiny_gan

KEYS = ("gan/fd_clip", "gan/kid_clip", "gan/precision_clip", "gan/recall_clip", "gan/clip_score",
        "gan/attr_acc_color", "gan/attr_acc_shape", "gan/untrained/fd_clip",
        "gan/real/attr_acc_color", "gan/heldout/attr_acc_label", "gan/heldout/fd_clip",
        "gan/heldout/real/attr_acc_label", "gan/pairs/attr_acc_both",
        "gan/pairs/real/attr_acc_label_1")


@pytest.fixture(scope="module")
def text_run(shapes_data_dir, tmp_path_factory):
    config = tiny_gan.tiny_gan_config(shapes_data_dir)
    workdir = str(tmp_path_factory.mktemp("gan") / "text")
    return config, workdir, loop.train_and_evaluate(config, workdir)


def test_text_to_image_trains_from_nothing_and_evaluates(text_run, capsys):
    config, workdir, trained = text_run
    for name in ("clip", "eval_encoder", "classifier"):
        sub = config.prerequisites[name]
        assert workdir_lib.latest_step(os.path.join(workdir, name)) == sub.config.total_steps
    # Finished prerequisites are not trained again.
    assert prerequisites.pending(config, workdir) == []
    assert trained["step"] == config.total_steps
    pictures = sorted(os.listdir(os.path.join(workdir, "pictures")))
    assert pictures == ["adversarial_step2.png", "adversarial_step4.png"]
    assert os.listdir(os.path.join(workdir, "tensorboard"))

    cli.print_metrics(evaluate_checkpoint.evaluate_latest(config, workdir))
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["step"] == config.total_steps
    # The loop's evaluator read the real images' side from its cache (its second evaluation);
    # this fresh one computes it: the same figures.
    for key in KEYS:
        assert key in printed, key
        assert printed[key] == pytest.approx(trained[key], rel=1e-5, abs=1e-6), key
    assert printed["gan/fd_clip"] >= 0 and 0 <= printed["gan/attr_acc_shape"] <= 1
    assert printed["gan/real/attr_acc_color"] >= 0


def test_truncation_sweep_reproduces_the_runs_evaluation_at_psi_one(text_run, tmp_path, capsys):
    """``benchmarks/gan_truncation.py`` scores the run with its own evaluation: at psi = 1 the
    figures the training loop logged; a table, a plot, a grid per psi and a JSON line."""
    _, workdir, trained = text_run
    plot, grids = str(tmp_path / "psi.png"), str(tmp_path / "grids")
    gan_truncation.main(["--workdir", workdir, "--psi", "0,1", "--plot", plot, "--grids", grids])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for key in ("precision_clip", "recall_clip", "attr_acc_shape", "attr_acc_label", "fd_clip"):
        # the JSON line keeps 5 significant digits: a rounding error up to 5e-5 of the value
        assert figures[f"psi_1/{key}"] == pytest.approx(trained[f"gan/{key}"], rel=1e-4, abs=1e-6)
        assert f"psi_0/{key}" in figures
    assert figures["psi_0/fd_clip"] != figures["psi_1/fd_clip"]  # truncation changed the samples
    assert any(line.startswith("psi ") for line in lines)
    assert os.path.getsize(plot) > 0 and sorted(os.listdir(grids)) == ["psi_0.png", "psi_1.png"]
    with pytest.raises(ValueError, match="must be a number in"):
        gan_truncation.sweep(workdir, [1.2])


def test_alignment_gap_reads_the_runs_images_as_its_evaluation_does(text_run, capsys):
    """``benchmarks/gan_alignment_gap.py``: the judge's accuracy on G's and on the real images
    is the run's own evaluation figure (same examples, same noise); the conditioning CLIP's
    readings are accuracies and cosines; the per-shape accuracies add up to the run's shape
    accuracy."""
    _, workdir, trained = text_run
    gan_alignment_gap.main(["--workdir", workdir])
    lines = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(lines[-1])
    for split, prefix in (("test", "gan"), ("heldout[50%:]", "gan/heldout")):
        for side, key in (("fake", f"{prefix}/attr_acc_label"), ("real", f"{prefix}/real/attr_acc_label")):
            assert figures[f"{split}/{side}/judge_label_acc"] == pytest.approx(trained[key], abs=1e-4)
            assert 0 <= figures[f"{split}/{side}/clip_label_acc"] <= 1
            assert -1 <= figures[f"{split}/{side}/cos_p10"] <= figures[f"{split}/{side}/cos_p90"] <= 1
        shapes = [k.split("/")[-1] for k in figures if k.startswith(f"{split}/fake/shape_acc/")]
        right = sum(figures[f"{split}/fake/shape_acc/{s}"] * figures[f"{split}/fake/shape_count/{s}"]
                    for s in shapes)
        assert sum(figures[f"{split}/fake/shape_count/{s}"] for s in shapes) == figures[f"{split}/examples"]
        assert right / figures[f"{split}/examples"] == pytest.approx(trained[f"{prefix}/attr_acc_shape"], abs=1e-4)
    assert any(line.startswith("split ") for line in lines)


def test_class_conditional_variant_on_existing_prerequisites(text_run, shapes_data_dir, tmp_path):
    _, text_workdir, _ = text_run
    config = tiny_gan.tiny_gan_config(shapes_data_dir, kind="class")
    for name in ("eval_encoder", "classifier"):
        config.prerequisites[name].workdir = os.path.join(text_workdir, name)
    config.total_steps = config.eval_every_steps = 2
    metrics = loop.train_and_evaluate(config, str(tmp_path / "class"))
    assert not os.path.exists(os.path.join(str(tmp_path / "class"), "eval_encoder"))
    for key in KEYS:
        assert key in metrics, key


def test_a_given_prerequisite_workdir_must_hold_a_checkpoint(tmp_path):
    config = tiny_gan.tiny_gan_config()
    config.prerequisites.clip.workdir = str(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="holds no checkpoint"):
        prerequisites.pending(config, str(tmp_path))


def test_a_stopped_and_resumed_gan_ends_bitwise_equal(text_run, shapes_data_dir, tmp_path):
    """Noise, DiffAugment and R1 follow the step (keys ``fold_in(step)``), so a GAN run
    stopped and resumed ends with the parameters (G, D and the EMA G) of one never stopped."""
    _, text_workdir, _ = text_run
    config = tiny_gan.tiny_gan_config(shapes_data_dir, kind="class")
    for name in ("eval_encoder", "classifier"):
        config.prerequisites[name].workdir = os.path.join(text_workdir, name)
    config.update(total_steps=4, checkpoint_every_steps=2, eval_every_steps=4)
    runs.assert_resume_equals_straight(config, tmp_path, stop_at_step=2)
