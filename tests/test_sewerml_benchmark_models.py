"""The Sewer-ML benchmark networks: shapes, sizes, input-size limits and build errors."""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("timm")
pytest.importorskip("torchvision")

from harness.errors import (  # noqa: E402
    FieldHarnessError,
    MissingDependencyError,
    UnknownNameError,
)
from sewerml.benchmark_models import (  # noqa: E402
    INPUT_SIZE_MULTIPLE,
    MIN_INPUT_SIZE,
    MODEL_INPUT_SIZE,
    MODEL_NAMES,
    Xie2019,
    build_model,
    check_input_size,
    smallest_input_size,
)

# Conv weights and biases: 3*64*11*11 + 64, 64*128*9 + 128, 128*128*9 + 128. Linear layers:
# 8192*1024 + 1024, 1024*512 + 512, 512*1 + 1.
XIE2019_BINARY_PARAMETERS = 23_296 + 73_856 + 147_584 + 8_389_632 + 524_800 + 513


@pytest.fixture(autouse=True)
def seeded_torch() -> None:
    torch.manual_seed(0)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def test_xie2019_binary_output_at_224() -> None:
    model = Xie2019()
    logits = model(torch.randn(2, 3, 224, 224))
    assert logits.shape == (2, 1)
    assert torch.isfinite(logits).all()


def test_xie2019_small_and_non_square_input() -> None:
    model = Xie2019(num_classes=17).eval()
    assert model(torch.randn(3, 3, 22, 22)).shape == (3, 17)
    assert model(torch.randn(1, 3, 40, 64)).shape == (1, 17)


def test_xie2019_parameter_count() -> None:
    assert XIE2019_BINARY_PARAMETERS == 9_159_681
    assert count_parameters(Xie2019()) == XIE2019_BINARY_PARAMETERS
    assert count_parameters(Xie2019(num_classes=17)) == XIE2019_BINARY_PARAMETERS + 16 * 513


def test_xie2019_layers() -> None:
    model = Xie2019(num_classes=17, dropout=0.25)
    first = model.features[0]
    assert (first.kernel_size, first.stride, first.padding) == ((11, 11), (1, 1), (5, 5))
    assert model.avgpool.output_size == (8, 8)
    dropouts = [layer.p for layer in model.classifier if isinstance(layer, torch.nn.Dropout)]
    assert dropouts == [0.25, 0.25]
    assert model.classifier[-1].out_features == 17


def test_xie2019_dropout_active_only_in_training() -> None:
    model = Xie2019()
    images = torch.randn(2, 3, 32, 32)
    model.eval()
    assert torch.equal(model(images), model(images))
    model.train()
    assert not torch.equal(model(images), model(images))


@pytest.mark.parametrize("dropout", [-0.1, 1.0])
def test_xie2019_invalid_dropout(dropout: float) -> None:
    message = r"dropout is .*; expected a probability in \[0, 1\)"
    with pytest.raises(FieldHarnessError, match=message):
        Xie2019(dropout=dropout)


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_invalid_num_classes(num_classes: object) -> None:
    with pytest.raises(FieldHarnessError, match="num_classes is .*; expected an integer >= 1"):
        build_model("xie2019", num_classes)  # type: ignore[arg-type]


def test_input_size_tables() -> None:
    assert set(MODEL_INPUT_SIZE) == set(MODEL_NAMES)
    assert set(MODEL_INPUT_SIZE.values()) == {224}
    assert set(MIN_INPUT_SIZE) == set(MODEL_NAMES)
    assert set(INPUT_SIZE_MULTIPLE) == set(MODEL_NAMES)
    for name in MODEL_NAMES:
        assert smallest_input_size(name) == MIN_INPUT_SIZE[name]
        assert smallest_input_size(name) % INPUT_SIZE_MULTIPLE[name] == 0
        check_input_size(name, MODEL_INPUT_SIZE[name], MODEL_INPUT_SIZE[name])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_step_at_smallest_size(name: str) -> None:
    model = build_model(name, 17).train()
    side = smallest_input_size(name)
    logits = model(torch.randn(2, 3, side, side))
    assert logits.shape == (2, 17)
    logits.sum().backward()
    gradients = [parameter.grad for parameter in model.parameters()]
    assert all(gradient is not None for gradient in gradients)


@pytest.mark.parametrize("name", ["tresnet_m", "xie2019"])
def test_smallest_size_is_tight(name: str) -> None:
    model = build_model(name, 17).train()
    side = smallest_input_size(name) - INPUT_SIZE_MULTIPLE[name]
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, side, side))


def test_tresnet_rejects_side_not_multiple_of_4() -> None:
    model = build_model("tresnet_m", 17).train()
    with pytest.raises(RuntimeError):
        model(torch.randn(2, 3, 34, 34))


def test_tresnet_l_eval_at_224() -> None:
    model = build_model("tresnet_l", 17).eval()
    assert 50_000_000 < count_parameters(model) < 60_000_000
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 17)
    assert torch.isfinite(logits).all()


def test_build_model_binary_head() -> None:
    assert build_model("resnet101", 1)(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    assert isinstance(build_model("xie2019", 1), Xie2019)


def test_check_input_size_errors() -> None:
    with pytest.raises(FieldHarnessError,
                       match="input width 34 px is invalid for tresnet_l; expected a multiple "
                             "of 4 px that is at least 20 px, such as 36"):
        check_input_size("tresnet_l", 224, 34)
    with pytest.raises(FieldHarnessError,
                       match="input height 16 px is invalid for tresnet_l; .* such as 20"):
        check_input_size("tresnet_l", 16, 224)
    with pytest.raises(FieldHarnessError,
                       match="input height 21 px is invalid for xie2019; expected a multiple "
                             "of 1 px that is at least 22 px, such as 22"):
        check_input_size("xie2019", 21, 224)
    check_input_size("xie2019", 23, 61)


def test_unknown_model_name() -> None:
    valid = "resnet101, tresnet_l, tresnet_m, tresnet_xl, xie2019"
    with pytest.raises(UnknownNameError, match=f"unknown model 'inception_v3'; valid values "
                                               f"are: {valid}"):
        build_model("inception_v3", 17)
    with pytest.raises(UnknownNameError, match="unknown model 'TResNet-L'"):
        smallest_input_size("TResNet-L")
    with pytest.raises(UnknownNameError, match="unknown model 'vgg16'"):
        check_input_size("vgg16", 224, 224)


def test_missing_timm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)
    with pytest.raises(MissingDependencyError,
                       match=r"model 'tresnet_l' needs timm, which is not installed; install "
                             r"it with: pip install 'fieldharness\[train\]'"):
        build_model("tresnet_l", 17)
    assert isinstance(build_model("xie2019", 1), Xie2019)


def test_missing_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torchvision.models", None)
    with pytest.raises(MissingDependencyError, match="model 'resnet101' needs torchvision"):
        build_model("resnet101", 17)
