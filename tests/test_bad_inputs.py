"""Every bad input of the README's table gets one clear paragraph before anything heavy runs:
config values and combinations, files of the wrong format (read without executing anything),
and command lines (exit code 2, no traceback, no usage dump). The package never unpickles."""

import json
import os
import pickle
import struct
import subprocess
import sys
import tokenize

import numpy as np
import pytest

from multimodal_jax.runtime import config_checks
from tests import env as test_env
from tests import tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Bad files of every kind a config can name."""
    d = tmp_path_factory.mktemp("bad_files")
    paths = {name: str(d / name) for name in (
        "notes.model", "weights.bin", "truncated.safetensors", "text.safetensors",
        "objects.npz", "pickle.npz", "empty_workdir", "a_file", "vocab.json")}
    with open(paths["notes.model"], "w") as f:
        f.write("a text file, not a SentencePiece model\n")
    with open(paths["weights.bin"], "wb") as f:
        pickle.dump({"w": [1.0]}, f)
    header = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    with open(paths["truncated.safetensors"], "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + bytes(30))  # 64 bytes promised
    with open(paths["text.safetensors"], "w") as f:
        f.write("hello, these are not weights")
    np.savez(paths["objects.npz"], w=np.array([{"x": 1}], dtype=object))
    with open(paths["pickle.npz"], "wb") as f:
        pickle.dump({"w": 1}, f)
    os.makedirs(paths["empty_workdir"])
    with open(paths["a_file"], "w") as f:
        f.write("x")
    with open(paths["vocab.json"], "w") as f:
        json.dump({"a": 0, "b": 1}, f)
    with open(str(d / "merges.txt"), "w") as f:  # beside it, so the missing specials are the fault
        f.write("#version: 0.2\n")
    return paths


def _set(path: str, value):
    """A config mutation: ``config.<path> = value``, as a config file could write it (of any
    type: the field is made anew)."""
    def mutate(config, files):
        block, _, field = path.rpartition(".")
        target = config
        for part in filter(None, block.split(".")):
            target = target[part]
        if field in target:
            del target[field]
        target[field] = value(files) if callable(value) else value
    return mutate


# (what, mutation, workdir or None, words the message must contain)
CASES = [
    ("batch not divisible by the devices", _set("batch_size", 12), None, "does not divide over 8 devices"),
    ("image size not tiled by the patch", _set("data.image_size", 18), None, "not divisible by the patch size 4"),
    ("width not divisible by heads", _set("model.image.num_heads", 3), None, "not divisible by num_heads=3"),
    ("tokens longer than the text model", _set("tokenizer.max_len", 32), None,
     "longer than config.model.text.max_len=8"),
    ("wrong type in a config file", _set("batch_size", "16"), None, "config.batch_size must be an integer"),
    ("zero steps", _set("total_steps", 0), None, "config.total_steps must be positive"),
    ("misspelt top-level field", _set("batchsize", 16), None, "did you mean config.batch_size"),
    ("unknown data field", _set("data.shuffle_bufer", 10), None, "'shuffle_bufer' (did you mean 'shuffle_buffer'?)"),
    ("unknown model field", _set("model.image.widht", 32), None, "'widht' (did you mean 'width'?)"),
    ("unknown ViT variant", _set("model.image.variant", "Q/16"), None, "Unknown ViT variant 'Q/16'"),
    ("unknown task", _set("task", "segmentation"), None, "config.task='segmentation' is unknown"),
    ("unknown loss", _set("loss", "hinge"), None, "config.loss='hinge' is unknown"),
    ("unknown driver", _set("parallel.driver", "tpu"), None, "config.parallel.driver='tpu' is unknown"),
    ("unknown dtype", _set("model.dtype", "float64"), None, "config.model.dtype='float64'"),
    ("unknown non-finite policy", _set("on_nonfinite", "ignore"), None, "config.on_nonfinite='ignore'"),
    ("FSDP group not dividing the devices", _set("parallel.fsdp", 3), None,
     "config.parallel.fsdp=3 must be a positive divisor of the 8 devices"),
    ("FSDP under the pmap driver",
     lambda c, f: (_set("parallel.fsdp", 2)(c, f), _set("parallel.driver", "pmap")(c, f)), None,
     "needs config.parallel.driver='mesh'"),
    ("unknown parallel field", _set("parallel.fdsp", 2), None, "'fdsp' (did you mean 'fsdp'?)"),
    ("unknown optimiser field", _set("optim.learning_rate", 3e-4), None,
     "config.optim has unknown field(s) 'learning_rate'"),
    ("learning rate as a string", _set("optim.lr", "1e-3"), None,
     "config.optim.lr must be a number, got '1e-3' (str)"),
    ("token length as a string", _set("tokenizer.max_len", "8"), None,
     "config.tokenizer.max_len must be a positive integer, got '8'"),
    ("unknown dataset", _set("data.name", "no_such_dataset"), None, "is not a TFDS dataset"),
    ("unknown built-in config", _set("data.name", "captioned_shapes/99px"), None,
     "the built-in dataset has the configs"),
    ("dataset not prepared", _set("data.name", "cifar10"), None, "is not prepared"),
    ("missing tokenizer file", _set("tokenizer.path", "/no/such/tokenizer.model"), None, "does not exist"),
    ("text file as a tokenizer", _set("tokenizer.path", lambda f: f["notes.model"]), None,
     "cannot be read as a sentencepiece tokenizer"),
    ("JSON without CLIP specials as a CLIP tokenizer",
     lambda c, f: (_set("tokenizer.kind", "clip_bpe")(c, f), _set("tokenizer.path", f["vocab.json"])(c, f)),
     None, "lacks the special token '<|startoftext|>'"),
    ("pickle weights", _set("init_from", lambda f: "openai_clip:" + f["weights.bin"]), None,
     "is a pickle-based file, which is never loaded"),
    ("truncated safetensors", _set("init_from", lambda f: "openai_clip:" + f["truncated.safetensors"]),
     None, "it is truncated"),
    ("text file as safetensors", _set("init_from", lambda f: "openai_clip:" + f["text.safetensors"]),
     None, "header size is larger than the file"),
    ("npz holding Python objects", _set("init_from", lambda f: "openai_clip:" + f["objects.npz"]),
     None, "holds Python objects, which would need pickle"),
    ("pickle file named .npz", _set("init_from", lambda f: "openai_clip:" + f["pickle.npz"]),
     None, "is not a readable .npz archive"),
    ("missing weights", _set("init_from", "hf_clip:/no/such/dir"), None, "does not exist"),
    ("unknown weights kind", _set("init_from", "torchhub:resnet"), None, "unknown kind 'torchhub'"),
    ("workdir without checkpoints", _set("init_from", lambda f: "workdir:" + f["empty_workdir"]),
     None, "holds no checkpoints/ folder"),
    ("unwritable workdir", None, "/proc/multimodal_jax_workdir", "cannot be written"),
    ("workdir under a file", None, "a_file/run", "is a file"),
    ("workdir as a URL other than gs://", None, "s3://bucket/run", "a local path or a Cloud Storage bucket"),
]


@pytest.mark.parametrize("what,mutate,workdir,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_config_gets_one_clear_paragraph(files, tmp_path, what, mutate, workdir, expected):
    config = tiny.tiny_contrastive_config()
    config.data.name, config.data.data_dir = "captioned_shapes/tiny", str(tmp_path)
    if mutate:
        mutate(config, files)
    workdir = files["a_file"] + "/run" if workdir == "a_file/run" else workdir or str(tmp_path / "run")
    with pytest.raises(config_checks.ConfigError) as info:
        config_checks.validate(config, workdir)
    message = str(info.value)
    assert expected in message, f"{what}: {message}"
    assert "\n" not in message and len(message) < 600, message


# (what, extra command-line arguments, words stderr must contain); run side by side.
COMMAND_LINES = [
    ("unknown override field", ["--config.batchsize=16"],
     "--config.batchsize: the config has no field 'batchsize'"),
    ("override of the wrong type", ["--config.batch_size=sixteen"],
     "flag --config.batch_size=sixteen: invalid literal for int()"),
    ("missing config file", ["--config=configs/no_such_config.py"],
     "The config file --config=configs/no_such_config.py does not exist"),
    ("config file that raises", ["--config=CONFIG_THAT_RAISES"], "failed at line 3: ZeroDivisionError"),
    ("unknown flag", ["--wokdir=/tmp/x"], "Unknown command line flag 'wokdir'"),
    ("impossible combination", ["--config.data.image_size=30"], "not divisible by the patch size 8"),
]


def test_bad_command_lines_exit_2_with_one_line(tmp_path):
    raising = tmp_path / "raising_config.py"
    raising.write_text("def get_config():\n    steps = 0\n    return 1 / steps\n")
    env = test_env.with_devices(8)
    processes = []
    for what, extra, expected in COMMAND_LINES:
        extra = [a.replace("CONFIG_THAT_RAISES", str(raising)) for a in extra]
        command = [sys.executable, "-m", "train", "--config", "configs/clip_shapes_smoke.py",
                   "--workdir", str(tmp_path / "run")] + extra
        processes.append((what, expected, subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for what, expected, process in processes:
        _, err = process.communicate(timeout=300)
        ours = [line for line in err.splitlines() if line.startswith("error: ")]
        assert process.returncode == 2, f"{what}: {err[-2000:]}"
        assert len(ours) == 1 and expected in ours[0], f"{what}: {err[-2000:]}"
        assert "Traceback" not in err and "--helpshort" not in err, f"{what}: {err[-2000:]}"


UNSAFE_NAMES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def _unsafe_uses(path: str) -> list[str]:
    """Code (strings and comments aside) that could execute what a file holds."""
    with open(path, "rb") as f:
        tokens = [t for t in tokenize.tokenize(f.readline)
                  if t.type in (tokenize.NAME, tokenize.OP)]
    found = []
    for i, token in enumerate(tokens):
        following = "".join(t.string for t in tokens[i + 1:i + 4])
        if token.string in UNSAFE_NAMES:
            found.append(f"{path}:{token.start[0]} uses {token.string}")
        elif token.string in ("eval", "exec") and following.startswith("("):
            found.append(f"{path}:{token.start[0]} calls {token.string}()")
        elif token.string in ("torch", "yaml") and following.startswith(".load"):
            found.append(f"{path}:{token.start[0]} calls {token.string}.load")
        elif token.string == "allow_pickle" and following.startswith("=True"):
            found.append(f"{path}:{token.start[0]} sets allow_pickle=True")
    return found


def test_nothing_a_user_gives_is_unpickled_or_executed():
    sources = [os.path.join(d, f) for top in ("multimodal_jax", "train")
               for d, _, names in os.walk(os.path.join(ROOT, top)) for f in names if f.endswith(".py")]
    assert len(sources) > 20
    assert [u for path in sources for u in _unsafe_uses(path)] == []
    assert _unsafe_uses(__file__)  # the scan finds what this very file does (pickle.dump)
