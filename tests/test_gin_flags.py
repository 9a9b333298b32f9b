import pytest

from jaxlt.gin_flags import split_gin_bindings


def test_split_gin_bindings_both_spellings():
    bindings, rest = split_gin_bindings(
        ["--gin_file=a.gin", "--gin.TRAIN_STEPS=10", "--gin.MODEL_DIR", "'/tmp/x'", "--batch_size", "4"])
    assert bindings == ["TRAIN_STEPS=10", "MODEL_DIR='/tmp/x'"]
    assert rest == ["--gin_file=a.gin", "--batch_size", "4"]


def test_gin_flag_without_value_is_an_error():
    with pytest.raises(SystemExit, match="no value"):
        split_gin_bindings(["--gin.TRAIN_STEPS"])
