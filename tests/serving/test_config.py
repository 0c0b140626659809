"""``serving.toml``: per-model policies, labels and batching; mistakes are refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelcapsule.errors import CapsuleFormatError
from modelcapsule.serving.config import ServerOptions, load_repository_config


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "serving.toml").write_text(text)
    return tmp_path


def test_defaults_then_model_overrides(tmp_path: Path) -> None:
    config = load_repository_config(
        write(
            tmp_path,
            """
[defaults]
batch_size = 16
[models.iris]
version_policy = "all"
labels = { stable = 1, canary = 2 }
batch_wait_ms = 5
""",
        ),
        ServerOptions(),
    )
    iris, other = config.for_model("iris"), config.for_model("other")
    assert (iris.batch_size, iris.batch_wait_ms, iris.version_policy) == (16, 5.0, "all")
    assert dict(iris.labels) == {"stable": 1, "canary": 2}
    assert (other.batch_size, other.version_policy, other.latest) == (16, "latest", 1)
    assert iris.select([1, 3, 2]) == [3, 2, 1]


def test_without_a_file_the_command_line_decides(tmp_path: Path) -> None:
    config = load_repository_config(tmp_path, ServerOptions(batch_size=8, batch_wait_ms=1))
    assert (config.defaults.batch_size, config.defaults.batch_wait_ms) == (8, 1.0)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[models.iris]\nbatchsize = 4\n", "unknown key(s) ['batchsize']"),
        ("[models.iris]\nbatch_size = 0\n", "batch_size must be a positive integer"),
        ('[models.iris]\nversion_policy = "newest"\n', "version_policy must be one of"),
        ('[models.iris]\nversion_policy = "specific"\n', "needs a 'versions' list"),
        ('[models.iris]\nlabels = { stable = "one" }\n', "labels must map label names to version numbers"),
        ("[model.iris]\n", "unknown table(s) ['model']"),
        ("[models.iris\n", "not valid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(CapsuleFormatError) as err:
        load_repository_config(write(tmp_path, text), ServerOptions())
    assert words in str(err.value)
