"""CT-GNN: the cross-task graph, the loss weights, the model and its loss."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import DataFormatError, FieldHarnessError, UnknownNameError
from sewerml.adjacency import (
    binarize,
    build_adjacency,
    conditional_probability,
    cooccurrence,
    load_adjacency_csv,
    ml_gcn_reweight,
    node_names,
    normalize,
    save_adjacency_csv,
)
from sewerml.classes import CIW
from sewerml.ctgnn import (
    CTGNN,
    CTGNNLoss,
    GATLayer,
    GCNLayer,
    ResNetEncoder,
    probabilities,
)
from sewerml.losses import (
    class_counts,
    effective_number_weights,
    pos_ciw_weights,
    positive_weights,
    task_weights,
)

ALL_TASKS = {"defect": 17, "water": 4, "shape": 6, "material": 8}
TWO_TASKS = {"defect": 17, "water": 4}

# A tiny label set: a 3-class multi-label task and a 2-class multi-class task, 4 images.
TINY_TASKS = {"defect": 3, "water": 2}
TINY_LABELS = {
    "defect": np.array([[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]], dtype=np.int8),
    "water": np.array([0, 1, 1, -100]),
}
TINY_COOCCURRENCE = np.array([
    [2, 1, 0, 1, 1],
    [1, 2, 1, 1, 1],
    [0, 1, 1, 0, 1],
    [1, 1, 0, 1, 0],
    [1, 1, 1, 0, 2],
])
TINY_CONDITIONAL = np.array([
    [1.0, 0.5, 0.0, 1.0, 0.5],
    [0.5, 1.0, 1.0, 1.0, 0.5],
    [0.0, 0.5, 1.0, 0.0, 0.5],
    [0.5, 0.5, 0.0, 1.0, 0.0],
    [0.5, 0.5, 1.0, 0.0, 1.0],
])
# Rows 0-2 are thresholded at 1/3, rows 3-4 at 1/2; 0.5 >= 1/2 is an edge.
TINY_BINARY = np.array([
    [1, 1, 0, 1, 1],
    [1, 1, 1, 1, 1],
    [0, 1, 1, 0, 1],
    [1, 1, 0, 1, 0],
    [1, 1, 1, 0, 1],
], dtype=np.float64)
TINY_DEGREE = np.array([4.0, 5.0, 3.0, 3.0, 4.0])


class TinyEncoder(nn.Module):
    """A conv + pool stand-in for the ResNet-50 encoder."""

    out_features = 8

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, self.out_features, 3, padding=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(torch.relu(self.conv(images)), 1).flatten(1)


def make_batch(task_classes: dict[str, int], size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    batch = {"image": torch.randn(size, 3, 32, 32, generator=generator)}
    for task, n in task_classes.items():
        if task == "defect":
            batch[task] = torch.randint(0, 2, (size, n), generator=generator).float()
        else:
            batch[task] = torch.randint(0, n, (size,), generator=generator)
    return batch


def tiny_model(task_classes: dict[str, int], gnn: str = "gat") -> CTGNN:
    torch.manual_seed(0)
    total = sum(task_classes.values())
    return CTGNN(task_classes, np.ones((total, total)) / total, gnn=gnn, encoder=TinyEncoder())


def parameter_count(module: nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# --- adjacency ---------------------------------------------------------------------------------


def test_cooccurrence_tiny() -> None:
    assert cooccurrence(TINY_LABELS, TINY_TASKS).tolist() == TINY_COOCCURRENCE.tolist()


def test_conditional_probability_tiny() -> None:
    np.testing.assert_allclose(conditional_probability(TINY_COOCCURRENCE), TINY_CONDITIONAL)


def test_conditional_probability_empty_class_is_zero() -> None:
    result = conditional_probability(np.array([[2, 0], [0, 0]]))

    assert result.tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_binarize_tiny_uses_greater_equal() -> None:
    assert binarize(TINY_CONDITIONAL, [3, 2]).tolist() == TINY_BINARY.tolist()


def test_normalizations_tiny() -> None:
    symmetric = TINY_BINARY / np.sqrt(np.outer(TINY_DEGREE, TINY_DEGREE))
    in_degree = TINY_BINARY / TINY_DEGREE[:, None]

    np.testing.assert_allclose(normalize(TINY_BINARY, "symmetric"), symmetric)
    np.testing.assert_allclose(normalize(TINY_BINARY, "in_degree"), in_degree)
    np.testing.assert_allclose(normalize(TINY_BINARY, None), TINY_BINARY)
    np.testing.assert_allclose(normalize(TINY_BINARY, "none"), TINY_BINARY)


def test_normalize_zero_row_stays_zero() -> None:
    matrix = np.array([[1.0, 0.0], [0.0, 0.0]])

    assert normalize(matrix, "symmetric").tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert normalize(matrix, "in_degree").tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_ml_gcn_reweight_tiny() -> None:
    third = 0.2 / 3
    expected = np.array([
        [0.8, third, 0.0, third, third],
        [0.05, 0.8, 0.05, 0.05, 0.05],
        [0.0, 0.1, 0.8, 0.0, 0.1],
        [0.1, 0.1, 0.0, 0.8, 0.0],
        [third, third, third, 0.0, 0.8],
    ])

    np.testing.assert_allclose(ml_gcn_reweight(TINY_BINARY, 0.2), expected)


def test_ml_gcn_reweight_isolated_node_keeps_itself() -> None:
    assert ml_gcn_reweight(np.eye(2), 0.2).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_build_adjacency_variants() -> None:
    binary = build_adjacency(TINY_LABELS, TINY_TASKS)
    full = build_adjacency(TINY_LABELS, TINY_TASKS, graph="full")
    conditional = build_adjacency(TINY_LABELS, TINY_TASKS, graph="conditional",
                                  normalization=None)
    reweighted = build_adjacency(TINY_LABELS, TINY_TASKS, reweight=0.2, normalization="none")

    assert binary.dtype == np.float32
    np.testing.assert_allclose(
        binary, TINY_BINARY / np.sqrt(np.outer(TINY_DEGREE, TINY_DEGREE)), rtol=1e-6
    )
    np.testing.assert_allclose(full, np.full((5, 5), 0.2), rtol=1e-6)
    np.testing.assert_allclose(conditional, TINY_CONDITIONAL * TINY_BINARY, rtol=1e-6)
    np.testing.assert_allclose(reweighted, ml_gcn_reweight(TINY_BINARY, 0.2), rtol=1e-6)


def test_node_names_and_csv_round_trip(tmp_path: Path) -> None:
    names = node_names({"defect": ["RB", "OB", "PF"], "water": ["0%<5%", "5-15%"]})
    matrix = build_adjacency(TINY_LABELS, TINY_TASKS).astype(np.float64)
    path = tmp_path / "graphs" / "adjacency.csv"

    save_adjacency_csv(matrix, names, path)
    loaded, loaded_names = load_adjacency_csv(path)

    assert names == ["defect:RB", "defect:OB", "defect:PF", "water:0%<5%", "water:5-15%"]
    assert loaded_names == names
    assert np.array_equal(loaded, matrix)
    header = path.read_text().splitlines()[0]
    assert header == ",defect:RB,defect:OB,defect:PF,water:0%<5%,water:5-15%"
    assert [p.name for p in path.parent.iterdir()] == ["adjacency.csv"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        (",a,b\na,1,0\n", "the file has 1 data rows for 2 names"),
        (",a,b\na,1,0\nb,1\n", r"adjacency.csv:3: the row has 2 fields; expected 3"),
        (",a,b\na,1,0\nc,1,1\n", r"adjacency.csv:3: the row name differs .*value 'c'.*'b'"),
        (",a,b\na,1,x\nb,1,1\n", r"adjacency.csv:2: invalid matrix entry \(field 'b', value 'x'\)"),
        (",a,b\na,1,nan\nb,1,1\n", r"invalid matrix entry \(field 'b', value 'nan'\)"),
    ],
)
def test_load_adjacency_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "adjacency.csv"
    path.write_text(text)

    with pytest.raises(DataFormatError, match=message):
        load_adjacency_csv(path)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"defect": TINY_LABELS["defect"]}, r"no labels for task 'water'; labels has tasks"),
        ({**TINY_LABELS, "water": np.array([0, 1, 1])}, "different numbers of images"),
        ({**TINY_LABELS, "water": np.array([0, 2, 1, 0])},
         r"label of task 'water' in row 1 is not a class index .*value 2.*0..1 or -100"),
        ({**TINY_LABELS, "water": np.array([0.0, 1.0, 1.0, 0.0])},
         r"labels of task 'water' have dtype float64 .*; expected integer class indices"),
        ({**TINY_LABELS, "defect": np.zeros((4, 2))}, "labels of task 'defect' have 2 columns"),
        ({**TINY_LABELS, "defect": np.full((4, 3), 2)},
         r"labels of task 'defect' in row 0, column 0 are not 0 or 1"),
        ({**TINY_LABELS, "water": np.zeros((4, 1, 1), dtype=int)},
         r"labels of task 'water' have shape \(4, 1, 1\)"),
    ],
)
def test_cooccurrence_invalid_labels(labels: dict, message: str) -> None:
    with pytest.raises(FieldHarnessError, match=message):
        cooccurrence(labels, TINY_TASKS)


def test_adjacency_argument_errors(tmp_path: Path) -> None:
    with pytest.raises(FieldHarnessError, match="task_classes is empty"):
        cooccurrence(TINY_LABELS, {})
    with pytest.raises(FieldHarnessError, match=r"task_sizes \[3, 3\] do not add up to .* 5"):
        binarize(TINY_CONDITIONAL, [3, 3])
    with pytest.raises(FieldHarnessError, match=r"cond has shape \(2, 3\); expected a square"):
        binarize(np.zeros((2, 3)), [3])
    with pytest.raises(FieldHarnessError, match=r"neighbour_weight is 1.5; expected p in \[0, 1\]"):
        ml_gcn_reweight(TINY_BINARY, 1.5)
    with pytest.raises(UnknownNameError, match="unknown normalization 'row'; valid values"):
        normalize(TINY_BINARY, "row")
    with pytest.raises(UnknownNameError, match="unknown normalization 'row'"):
        build_adjacency(TINY_LABELS, TINY_TASKS, normalization="row")
    with pytest.raises(UnknownNameError, match="unknown graph 'dense'; valid values are: binary"):
        build_adjacency(TINY_LABELS, TINY_TASKS, graph="dense")
    with pytest.raises(FieldHarnessError, match="got 2 names for a 5x5 matrix"):
        save_adjacency_csv(TINY_BINARY, ["a", "b"], tmp_path / "a.csv")


# --- loss weights ------------------------------------------------------------------------------


def test_class_counts() -> None:
    assert class_counts(TINY_LABELS["defect"], 3).tolist() == [2, 2, 1]
    assert class_counts(np.array([0, 2, 2, -100]), 3).tolist() == [1, 0, 2]
    with pytest.raises(FieldHarnessError, match=r"target in row 1 is 5; expected a class index"):
        class_counts(np.array([0, 5]), 3)
    with pytest.raises(FieldHarnessError, match="targets have 2 columns; expected 3"):
        class_counts(np.zeros((2, 2)), 3)
    with pytest.raises(FieldHarnessError, match=r"targets have shape \(1, 1, 1\)"):
        class_counts(np.zeros((1, 1, 1)), 3)


def test_positive_weights(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sewerml.losses"):
        weights = positive_weights([1, 3, 0], 4)

    np.testing.assert_allclose(weights, [3.0, 1 / 3, 0.0])
    assert "classes [2] have no positives" in caplog.text
    with pytest.raises(FieldHarnessError, match=r"positive counts \[5.0\] with total 4"):
        positive_weights([5], 4)


def test_pos_ciw_weights() -> None:
    weights = pos_ciw_weights()

    assert weights.sum() == pytest.approx(17.0)
    assert weights[0] == pytest.approx(17 / 6.7024)  # RB, CIW 1.0; the 17 CIWs sum to 6.7024
    assert weights[1] == pytest.approx(0.5518 * 17 / 6.7024)
    np.testing.assert_allclose(weights / weights[0], CIW)
    with pytest.raises(FieldHarnessError, match="expected 17 positive numbers"):
        pos_ciw_weights([1.0, 2.0])


def test_effective_number_weights() -> None:
    # Raw weights 0.1 / (1 - 0.9^10) = 0.1535342 and 0.1 / (1 - 0.9^100) = 0.1000027, scaled
    # to sum to 3; the class without images gets 0.
    weights = effective_number_weights([10, 0, 100], beta=0.9)

    np.testing.assert_allclose(weights, [1.8167077, 0.0, 1.1832923], rtol=1e-6)
    assert weights.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(effective_number_weights([5, 5]), [1.0, 1.0])
    with pytest.raises(FieldHarnessError, match=r"beta is 1.0; expected a number in \[0, 1\)"):
        effective_number_weights([1, 2], beta=1.0)
    with pytest.raises(FieldHarnessError, match="with at least one > 0"):
        effective_number_weights([0, 0])


def test_task_weights() -> None:
    four = task_weights(["defect", "water", "shape", "material"])
    two = task_weights(["defect", "water"])

    assert four["defect"] == pytest.approx(3.6)
    assert four["water"] == four["shape"] == four["material"] == pytest.approx(2 / 15)
    assert two == pytest.approx({"defect": 27 / 14, "water": 1 / 14})
    with pytest.raises(UnknownNameError, match="unknown task 'pipe'; valid values are: defect"):
        task_weights(["defect", "pipe"])
    with pytest.raises(FieldHarnessError, match="tasks is empty"):
        task_weights([])
    with pytest.raises(FieldHarnessError, match="ratio of task 'water' is 0; expected > 0"):
        task_weights(["water"], {"water": 0})


# --- model -------------------------------------------------------------------------------------


@pytest.mark.parametrize("task_classes", [TWO_TASKS, ALL_TASKS])
@pytest.mark.parametrize("gnn", ["gat", "gcn"])
def test_ctgnn_forward_shapes(task_classes: dict[str, int], gnn: str) -> None:
    model = tiny_model(task_classes, gnn)

    outputs = model(torch.randn(2, 3, 32, 32))

    assert set(outputs) == {"pre", "out"}
    for kind in ("pre", "out"):
        assert list(outputs[kind]) == list(task_classes)
        for task, n in task_classes.items():
            assert outputs[kind][task].shape == (2, n)
    assert "adjacency" in dict(model.named_buffers())
    assert "adjacency" in model.state_dict()


def test_resnet_encoder_64px_and_parameter_counts() -> None:
    encoder = ResNetEncoder(50).eval()
    with torch.no_grad():
        features = encoder(torch.randn(1, 3, 64, 64))

    assert encoder.out_features == 2048
    assert features.shape == (1, 2048)
    assert parameter_count(encoder) == 23_508_032

    # The CT-GNN paper (Haurum et al., WACV 2022) lists 24.0 M for CTGAT and 25.2 M for CTGCN
    # with four tasks. Here CTGCN has 256 parameters fewer than CTGAT, so 25.2 M is not matched.
    counts = {}
    for name, tasks in (("all", ALL_TASKS), ("two", TWO_TASKS)):
        total = sum(tasks.values())
        for gnn in ("gat", "gcn"):
            model = CTGNN(tasks, np.eye(total), gnn=gnn, encoder=encoder)
            counts[name, gnn] = parameter_count(model)
    assert counts == {
        ("all", "gat"): 24_006_628,
        ("all", "gcn"): 24_006_372,
        ("two", "gat"): 23_787_670,
        ("two", "gcn"): 23_787_414,
    }


def test_gat_attends_only_to_neighbours() -> None:
    torch.manual_seed(0)
    layer = GATLayer(16, heads=4)
    # Node 0 has only its self-loop; node 1 receives from node 2; node 2 has no edge at all.
    adjacency = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    nodes = torch.randn(1, 3, 16)
    changed = nodes.clone()
    changed[0, 2] += 5.0

    before = layer(nodes, adjacency)
    after = layer(changed, adjacency)

    assert torch.equal(before[0, 0], after[0, 0])
    assert not torch.allclose(before[0, 1], after[0, 1])
    assert torch.isfinite(before).all()


def test_gat_self_only_node_output() -> None:
    torch.manual_seed(0)
    layer = GATLayer(8, heads=2)
    nodes = torch.randn(1, 2, 8)

    output = layer(nodes, torch.eye(2))

    projected = torch.einsum("bnf,hfo->bhno", nodes, layer.weight)
    own = projected.permute(0, 2, 1, 3).reshape(1, 2, 8)
    torch.testing.assert_close(output, F.elu(own) + nodes)


def test_gcn_layer_formula() -> None:
    torch.manual_seed(0)
    layer = GCNLayer(8)
    nodes = torch.randn(2, 3, 8)
    adjacency = torch.tensor([[0.5, 0.5, 0.0], [0.0, 1.0, 0.0], [0.2, 0.3, 0.5]])

    output = layer(nodes, adjacency)

    expected = F.leaky_relu(adjacency @ nodes @ layer.weight, 0.2) + nodes
    torch.testing.assert_close(output, expected)


def test_ctgnn_argument_errors() -> None:
    with pytest.raises(UnknownNameError, match="unknown GNN layer 'gin'; valid values are: gat"):
        CTGNN(TINY_TASKS, np.eye(5), gnn="gin", encoder=TinyEncoder())
    with pytest.raises(FieldHarnessError, match=r"adjacency has shape \(4, 4\); expected \(5, 5\)"):
        CTGNN(TINY_TASKS, np.eye(4), encoder=TinyEncoder())
    with pytest.raises(FieldHarnessError, match="adjacency has a negative or non-finite entry"):
        CTGNN(TINY_TASKS, -np.eye(5), encoder=TinyEncoder())
    with pytest.raises(FieldHarnessError, match="encoder Conv2d has no integer attribute"):
        CTGNN(TINY_TASKS, np.eye(5), encoder=nn.Conv2d(3, 3, 1))
    with pytest.raises(FieldHarnessError, match="node size 128 is not divisible by 3 attention"):
        CTGNN(TINY_TASKS, np.eye(5), heads=3, encoder=TinyEncoder())
    with pytest.raises(FieldHarnessError, match=r"invalid class counts \{'water': 0\}"):
        CTGNN({"defect": 3, "water": 0}, np.eye(3), encoder=TinyEncoder())
    with pytest.raises(FieldHarnessError, match="task_classes is empty"):
        CTGNN({}, np.eye(0), encoder=TinyEncoder())
    with pytest.raises(UnknownNameError, match="unknown ResNet depth 49"):
        ResNetEncoder(49)


# --- loss --------------------------------------------------------------------------------------


def make_loss(task_classes: dict[str, int], **overrides: object) -> CTGNNLoss:
    arguments: dict[str, object] = {
        "defect_pos_weight": torch.as_tensor(pos_ciw_weights()),
        "class_weights": {"water": torch.tensor([1.0, 2.0, 0.5, 1.5])},
        "task_weights": task_weights(list(task_classes)),
    }
    arguments.update(overrides)
    return CTGNNLoss(task_classes, **arguments)  # type: ignore[arg-type]


def test_loss_matches_manual_sum() -> None:
    model = tiny_model(TWO_TASKS)
    batch = make_batch(TWO_TASKS)
    batch["water"][1] = -100
    loss_fn = make_loss(TWO_TASKS)

    outputs = model(batch["image"])
    total = loss_fn(outputs, batch)

    pos_weight = torch.as_tensor(pos_ciw_weights()).float()
    water_weight = torch.tensor([1.0, 2.0, 0.5, 1.5])
    expected = 0.0
    for task, weight in task_weights(["defect", "water"]).items():
        parts = []
        for kind in ("out", "pre"):
            logits = outputs[kind][task]
            if task == "defect":
                parts.append(F.binary_cross_entropy_with_logits(logits, batch[task],
                                                                pos_weight=pos_weight))
            else:
                parts.append(F.cross_entropy(logits, batch[task], weight=water_weight,
                                             ignore_index=-100))
        expected = expected + weight * (0.75 * parts[0] + 0.25 * parts[1])
    torch.testing.assert_close(total, expected)
    terms = loss_fn.last_terms
    assert set(terms) == {"defect", "defect/out", "defect/pre", "water", "water/out",
                          "water/pre", "total"}
    assert terms["total"] == pytest.approx(total.item())
    assert isinstance(terms["water/out"], float)


def test_loss_all_ignored_task_adds_zero() -> None:
    model = tiny_model(ALL_TASKS)
    batch = make_batch(ALL_TASKS)
    batch["shape"][:] = -100
    loss_fn = make_loss(ALL_TASKS)

    total = loss_fn(model(batch["image"]), batch)

    assert torch.isfinite(total)
    assert loss_fn.last_terms["shape"] == 0.0
    assert loss_fn.last_terms["material"] > 0.0


def test_loss_gradients_reach_encoder() -> None:
    model = tiny_model(ALL_TASKS)
    batch = make_batch(ALL_TASKS)

    make_loss(ALL_TASKS)(model(batch["image"]), batch).backward()

    assert model.encoder.conv.weight.grad is not None
    assert model.encoder.conv.weight.grad.abs().sum() > 0
    for module in (model.gnn, model.classifier, model.heads["water"]):
        for parameter in module.parameters():
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0


@pytest.mark.parametrize("gnn", ["gat", "gcn"])
def test_loss_under_bf16_autocast(gnn: str) -> None:
    model = tiny_model(ALL_TASKS, gnn)
    batch = make_batch(ALL_TASKS)
    batch["material"][0] = -100

    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(batch["image"])
        total = make_loss(ALL_TASKS)(outputs, batch)
    total.backward()

    assert outputs["out"]["defect"].dtype == torch.bfloat16
    assert total.dtype == torch.float32
    assert torch.isfinite(total)


def test_probabilities() -> None:
    model = tiny_model(ALL_TASKS)
    outputs = model(torch.randn(3, 3, 32, 32))

    result = probabilities(outputs)

    torch.testing.assert_close(result["defect"], torch.sigmoid(outputs["out"]["defect"]))
    for task in ("water", "shape", "material"):
        torch.testing.assert_close(result[task].sum(dim=1), torch.ones(3))


def test_loss_argument_errors() -> None:
    with pytest.raises(FieldHarnessError, match=r"task_weights has no weight for \['water'\]"):
        make_loss(TWO_TASKS, task_weights={"defect": 1.0})
    with pytest.raises(FieldHarnessError, match=r"defect_pos_weight is \[1.0, 2.0\]; expected 17"):
        make_loss(TWO_TASKS, defect_pos_weight=[1.0, 2.0])
    with pytest.raises(FieldHarnessError, match=r"class_weights\['water'\] is .*expected 4"):
        make_loss(TWO_TASKS, class_weights={"water": [1.0]})
    with pytest.raises(FieldHarnessError, match=r"class_weights has tasks \['shape'\] that are"):
        make_loss(TWO_TASKS, class_weights={"shape": [1.0] * 6})
    with pytest.raises(FieldHarnessError, match=r"aux_weight is 2; expected a number in \[0, 1\]"):
        make_loss(TWO_TASKS, aux_weight=2)

    loss_fn = make_loss(TWO_TASKS)
    model = tiny_model(TWO_TASKS)
    batch = make_batch(TWO_TASKS)
    outputs = model(batch["image"])
    del batch["water"]
    with pytest.raises(FieldHarnessError, match="the batch has no targets for task 'water'"):
        loss_fn(outputs, batch)
    with pytest.raises(FieldHarnessError, match=r"no 'defect' logits under \['pre'\]"):
        loss_fn({"out": outputs["out"], "pre": {}}, make_batch(TWO_TASKS))
