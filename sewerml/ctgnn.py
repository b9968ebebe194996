"""CT-GNN: a multi-task classifier whose class nodes exchange information over a cross-task graph.

Source: Haurum, Madadi, Escalera & Moeslund, "Multi-Task Classification of Sewer Pipe Defects
and Properties using a Cross-Task Graph Neural Network Decoder", WACV 2022, and the layout of
its code (``models/decoders.py``, ``models/graph_layers.py``, ``models/encoders.py``). The code
here is written from that description.

Architecture, for tasks t with n_t classes:

- a shared encoder (ResNet-50 trained from scratch) gives one feature vector per image;
- per task, a linear head gives the "pre" logits, and a bottleneck Linear(F, 32) + LeakyReLU(0.2)
  followed by Linear(32, 128 n_t) + LeakyReLU(0.2) gives one 128-d embedding per class;
- the class embeddings of all tasks are the nodes of one graph with a fixed adjacency matrix
  (see :mod:`sewerml.adjacency`), and one GCN or GAT layer with a residual connection updates
  them;
- a Linear(128, 1) shared by all nodes gives the refined "out" logits, split back per task.

This module needs torch and is imported only by training code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from harness.errors import FieldHarnessError, UnknownNameError
from sewerml.tasks import IGNORE_INDEX

__all__ = [
    "CTGNN",
    "GNN_LAYERS",
    "IGNORE_INDEX",
    "MULTILABEL_TASKS",
    "CTGNNLoss",
    "GATLayer",
    "GCNLayer",
    "ResNetEncoder",
    "probabilities",
]

logger = logging.getLogger(__name__)

# Tasks scored with a sigmoid per class and BCE; every other task is multi-class (softmax, CE).
MULTILABEL_TASKS: frozenset[str] = frozenset({"defect"})

GNN_LAYERS: tuple[str, ...] = ("gat", "gcn")

# Negative slope of every LeakyReLU in the CT-GNN decoder and of the GAT attention scores.
LEAKY_SLOPE = 0.2

_RESNETS = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
    152: torchvision.models.resnet152,
}


class ResNetEncoder(nn.Module):
    """A torchvision ResNet without its classifier, randomly initialised; nothing is downloaded.

    Args:
        depth: 18, 34, 50, 101 or 152.

    Attributes:
        out_features: Size of the global-average-pooled feature (2048 for ResNet-50).

    Raises:
        UnknownNameError: If ``depth`` is not a torchvision ResNet depth.
    """

    def __init__(self, depth: int = 50):
        super().__init__()
        if depth not in _RESNETS:
            raise UnknownNameError("ResNet depth", depth, _RESNETS)
        network = _RESNETS[depth](weights=None)
        self.out_features: int = network.fc.in_features
        network.fc = nn.Identity()
        self.network = network

    def forward(self, images: Tensor) -> Tensor:
        """Map images [B, 3, H, W] to features [B, out_features]."""
        return self.network(images)


class GCNLayer(nn.Module):
    """Graph convolution H' = LeakyReLU(A H W) + H (Kipf & Welling, ICLR 2017, with a residual).

    Args:
        features: Node embedding size, the same in and out.
        dropout: Dropout probability after the activation.
    """

    def __init__(self, features: int, dropout: float = 0.0):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(features, features))
        self.dropout = dropout
        nn.init.xavier_uniform_(self.weight, gain=math.sqrt(2.0))

    def forward(self, nodes: Tensor, adjacency: Tensor) -> Tensor:
        """Update nodes [B, N, features] with adjacency [N, N] (row i receives from column j)."""
        messages = adjacency.to(nodes.dtype) @ (nodes @ self.weight.to(nodes.dtype))
        messages = F.leaky_relu(messages, LEAKY_SLOPE)
        messages = F.dropout(messages, self.dropout, training=self.training)
        return messages + nodes


class GATLayer(nn.Module):
    """Multi-head graph attention (Velickovic et al., ICLR 2018) with ELU and a residual connection.

    Each of ``heads`` heads projects the nodes to ``features // heads`` values and attends only
    over the edges where the adjacency is > 0, plus each node's own self-loop. The heads are
    concatenated, passed through ELU and added to the input.

    NOTE: the self-loop is always kept, unlike CT-GNN's layer, so a node without any edge (a
    class absent from the training labels) attends to itself instead of to all nodes uniformly.

    Args:
        features: Node embedding size, the same in and out; divisible by ``heads``.
        heads: Number of attention heads.
        dropout: Dropout probability on the attention weights and after the activation.

    Raises:
        FieldHarnessError: If ``features`` is not divisible by ``heads``.
    """

    def __init__(self, features: int, heads: int = 8, dropout: float = 0.0):
        super().__init__()
        if heads < 1 or features % heads:
            raise FieldHarnessError(
                f"node size {features} is not divisible by {heads} attention heads; expected a "
                "head count that divides the node size"
            )
        head_features = features // heads
        self.heads = heads
        self.dropout = dropout
        self.weight = nn.Parameter(torch.empty(heads, features, head_features))
        # The attention vector a = [a_target; a_source] of each head, split in its two halves.
        self.attention_target = nn.Parameter(torch.empty(heads, head_features))
        self.attention_source = nn.Parameter(torch.empty(heads, head_features))
        nn.init.xavier_uniform_(self.weight, gain=math.sqrt(2.0))
        for vector in (self.attention_target, self.attention_source):
            nn.init.xavier_uniform_(vector.unsqueeze(-1), gain=math.sqrt(2.0))

    def forward(self, nodes: Tensor, adjacency: Tensor) -> Tensor:
        """Update nodes [B, N, features]; only the mask ``adjacency > 0`` of [N, N] is used."""
        projected = torch.einsum("bnf,hfo->bhno", nodes, self.weight.to(nodes.dtype))

        # Score e_ij = LeakyReLU(a_target . Wh_i + a_source . Wh_j) for target i and source j.
        target = torch.einsum("bhno,ho->bhn", projected, self.attention_target.to(nodes.dtype))
        source = torch.einsum("bhno,ho->bhn", projected, self.attention_source.to(nodes.dtype))
        scores = F.leaky_relu(target.unsqueeze(-1) + source.unsqueeze(-2), LEAKY_SLOPE)

        size = adjacency.shape[0]
        mask = (adjacency > 0) | torch.eye(size, dtype=torch.bool, device=adjacency.device)
        scores = scores.float().masked_fill(~mask, float("-inf"))
        attention = torch.softmax(scores, dim=-1).to(projected.dtype)
        attention = F.dropout(attention, self.dropout, training=self.training)

        attended = attention @ projected
        batch, heads, _, head_features = attended.shape
        merged = attended.permute(0, 2, 1, 3).reshape(batch, size, heads * head_features)
        merged = F.dropout(F.elu(merged), self.dropout, training=self.training)
        return merged + nodes


class CTGNN(nn.Module):
    """The CT-GNN multi-task classifier.

    Args:
        task_classes: Number of classes per task; its order is the node order of the graph and
            must match ``adjacency``, e.g. ``{"defect": 17, "water": 4, "shape": 6,
            "material": 8}``.
        adjacency: Float matrix [C_total, C_total] from :func:`sewerml.adjacency.build_adjacency`,
            already normalised; stored as the buffer ``adjacency``.
        gnn: ``"gat"`` (CTGAT) or ``"gcn"`` (CTGCN).
        heads: GAT attention heads.
        node_dim: Size of each class node embedding.
        bottleneck: Size of each task's bottleneck.
        dropout: Dropout in the GNN layer; CT-GNN trains with 0.
        encoder: Any module mapping images to [B, F] with an ``out_features`` attribute; a
            randomly initialised ResNet-50 when None.

    Raises:
        FieldHarnessError: If ``task_classes`` is empty or has a count below 1, the adjacency
            has the wrong shape or a non-finite or negative entry, or the encoder has no
            ``out_features``.
        UnknownNameError: If ``gnn`` is not one of ``GNN_LAYERS``.

    NOTE: with ResNet-50 and the four tasks, CTGAT has 24,006,628 parameters (the paper lists
    24.0 M) and CTGCN 24,006,372. The paper lists 25.2 M for CTGCN, a difference not explained
    by the architecture described here.
    """

    def __init__(
        self,
        task_classes: Mapping[str, int],
        adjacency: Any,
        *,
        gnn: str = "gat",
        heads: int = 8,
        node_dim: int = 128,
        bottleneck: int = 32,
        dropout: float = 0.0,
        encoder: nn.Module | None = None,
    ):
        super().__init__()
        self.task_classes = _check_task_classes(task_classes)
        if gnn not in GNN_LAYERS:
            raise UnknownNameError("GNN layer", gnn, GNN_LAYERS)
        total = sum(self.task_classes.values())
        self.register_buffer("adjacency", _check_adjacency(adjacency, total))

        self.encoder = ResNetEncoder(50) if encoder is None else encoder
        features = getattr(self.encoder, "out_features", None)
        if not isinstance(features, int):
            raise FieldHarnessError(
                f"encoder {type(self.encoder).__name__} has no integer attribute out_features; "
                "expected the size of the feature vector it returns"
            )

        self.node_dim = node_dim
        self.heads = nn.ModuleDict()
        self.bottlenecks = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        for task, n_classes in self.task_classes.items():
            self.heads[task] = nn.Linear(features, n_classes)
            self.bottlenecks[task] = nn.Sequential(
                nn.Linear(features, bottleneck), nn.LeakyReLU(LEAKY_SLOPE)
            )
            self.projections[task] = nn.Sequential(
                nn.Linear(bottleneck, node_dim * n_classes), nn.LeakyReLU(LEAKY_SLOPE)
            )

        self.gnn_name = gnn
        if gnn == "gat":
            self.gnn: nn.Module = GATLayer(node_dim, heads=heads, dropout=dropout)
        else:
            self.gnn = GCNLayer(node_dim, dropout=dropout)
        self.classifier = nn.Linear(node_dim, 1)

    def forward(self, images: Tensor) -> dict[str, dict[str, Tensor]]:
        """Classify a batch of images.

        Args:
            images: Float tensor [B, 3, H, W].

        Returns:
            ``{"pre": {task: [B, n_t]}, "out": {task: [B, n_t]}}``: the logits of the task heads
            before the graph layer and the refined logits after it.
        """
        features = self.encoder(images)
        batch = features.shape[0]

        pre: dict[str, Tensor] = {}
        node_blocks = []
        for task, n_classes in self.task_classes.items():
            pre[task] = self.heads[task](features)
            embedding = self.projections[task](self.bottlenecks[task](features))
            node_blocks.append(embedding.view(batch, n_classes, self.node_dim))

        nodes = self.gnn(torch.cat(node_blocks, dim=1), self.adjacency)
        logits = self.classifier(nodes).squeeze(-1)
        split = torch.split(logits, list(self.task_classes.values()), dim=1)
        out = dict(zip(self.task_classes, split, strict=True))
        return {"pre": pre, "out": out}


class CTGNNLoss(nn.Module):
    """The CT-GNN training loss: weighted task losses on the refined and the pre-graph logits.

    The defect task uses BCE-with-logits with a positive weight per class, and the multi-class
    tasks use cross-entropy with class weights that skips targets equal to ``IGNORE_INDEX``.
    The total is sum_t w_t ((1 - a) L_t(out) + a L_t(pre)) with a = ``aux_weight``.

    Args:
        task_classes: Number of classes per task, as for :class:`CTGNN`.
        defect_pos_weight: The BCE ``pos_weight`` [17] of the defect task (CT-GNN: CIW rescaled
            to sum to 17, see :func:`sewerml.losses.pos_ciw_weights`); ignored without a
            defect task.
        class_weights: Cross-entropy class weights per multi-class task, or None for equal
            weights. A task missing from the mapping gets equal weights.
        task_weights: Weight w_t of every task in ``task_classes``.
        aux_weight: Weight a of the loss on the pre-graph logits; CT-GNN uses 0.25.

    Attributes:
        last_terms: Per-task losses of the last call as floats, under ``"<task>"`` (the
            combined loss, before w_t), ``"<task>/out"`` and ``"<task>/pre"``, plus ``"total"``.

    Raises:
        FieldHarnessError: If a task has no weight, a weight tensor has the wrong length, or
            ``aux_weight`` is outside [0, 1].
    """

    def __init__(
        self,
        task_classes: Mapping[str, int],
        *,
        defect_pos_weight: Any = None,
        class_weights: Mapping[str, Any] | None = None,
        task_weights: Mapping[str, float],
        aux_weight: float = 0.25,
    ):
        super().__init__()
        self.task_classes = _check_task_classes(task_classes)
        if not 0.0 <= aux_weight <= 1.0:
            raise FieldHarnessError(f"aux_weight is {aux_weight!r}; expected a number in [0, 1]")
        self.aux_weight = float(aux_weight)

        missing = [task for task in self.task_classes if task not in task_weights]
        if missing:
            raise FieldHarnessError(
                f"task_weights has no weight for {missing}; expected one for every task of "
                f"{list(self.task_classes)}"
            )
        self.task_weights = {task: float(task_weights[task]) for task in self.task_classes}

        class_weights = dict(class_weights or {})
        for task, n_classes in self.task_classes.items():
            if task in MULTILABEL_TASKS:
                weight = defect_pos_weight
                name = f"{task}_pos_weight"
            else:
                weight = class_weights.pop(task, None)
                name = f"class_weights[{task!r}]"
            self.register_buffer(f"weight_{task}", _weight_tensor(weight, n_classes, name))
        if class_weights:
            raise FieldHarnessError(
                f"class_weights has tasks {sorted(class_weights)} that are not multi-class tasks "
                f"of {list(self.task_classes)}"
            )
        self._last_terms: dict[str, Tensor] = {}

    @property
    def last_terms(self) -> dict[str, float]:
        """Per-task losses of the last call; converted to floats only here, on access."""
        return {name: float(value) for name, value in self._last_terms.items()}

    def forward(
        self, outputs: Mapping[str, Mapping[str, Tensor]], batch: Mapping[str, Any]
    ) -> Tensor:
        """Compute the total loss of one batch.

        Args:
            outputs: The dict returned by :meth:`CTGNN.forward`.
            batch: The collated batch, with ``"defect"`` float [B, 17] and the multi-class
                tasks as int64 [B] (``IGNORE_INDEX`` where an image has no label).

        Returns:
            A float32 scalar. A multi-class task whose targets are all ignored adds 0.

        Raises:
            FieldHarnessError: If ``outputs`` or ``batch`` lacks a task.
        """
        terms: dict[str, Tensor] = {}
        total = None
        for task, task_weight in self.task_weights.items():
            if task not in batch:
                raise FieldHarnessError(
                    f"the batch has no targets for task {task!r}; it has keys {sorted(batch)}"
                )
            missing = [kind for kind in ("out", "pre") if task not in outputs.get(kind, {})]
            if missing:
                raise FieldHarnessError(
                    f"the model outputs have no {task!r} logits under {missing}; expected the "
                    "dict returned by CTGNN.forward"
                )

            out_loss = self._task_loss(task, outputs["out"][task], batch[task])
            pre_loss = self._task_loss(task, outputs["pre"][task], batch[task])
            combined = (1.0 - self.aux_weight) * out_loss + self.aux_weight * pre_loss
            terms[f"{task}/out"] = out_loss.detach()
            terms[f"{task}/pre"] = pre_loss.detach()
            terms[task] = combined.detach()
            weighted = task_weight * combined
            total = weighted if total is None else total + weighted

        assert total is not None  # task_classes is never empty
        terms["total"] = total.detach()
        self._last_terms = terms
        return total

    def _task_loss(self, task: str, logits: Tensor, targets: Any) -> Tensor:
        logits = logits.float()
        weight = getattr(self, f"weight_{task}")
        targets = torch.as_tensor(targets, device=logits.device)
        if task in MULTILABEL_TASKS:
            return F.binary_cross_entropy_with_logits(logits, targets.float(), pos_weight=weight)

        # PyTorch's mean divides by the summed weights of the kept targets, which is 0/0 = NaN
        # when all are ignored; the clamp turns that case into 0 without a device sync.
        targets = targets.long().view(-1)
        summed = F.cross_entropy(logits, targets, weight=weight, ignore_index=IGNORE_INDEX,
                                 reduction="sum")
        kept = targets != IGNORE_INDEX
        kept_weight = (weight[targets.clamp(min=0)] * kept).sum()
        return summed / kept_weight.clamp(min=torch.finfo(torch.float32).tiny)


def probabilities(outputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Turn the refined logits into float32 probabilities: sigmoid for defect, softmax otherwise."""
    result = {}
    for task, logits in outputs["out"].items():
        logits = logits.float()
        result[task] = torch.sigmoid(logits) if task in MULTILABEL_TASKS else logits.softmax(-1)
    return result


def _check_task_classes(task_classes: Mapping[str, int]) -> dict[str, int]:
    if not task_classes:
        raise FieldHarnessError("task_classes is empty; expected at least one task")
    bad = {task: n for task, n in task_classes.items() if not isinstance(n, int) or n < 1}
    if bad:
        raise FieldHarnessError(f"task_classes has invalid class counts {bad}; expected ints >= 1")
    return dict(task_classes)


def _check_adjacency(adjacency: Any, total: int) -> Tensor:
    if isinstance(adjacency, Tensor):
        matrix = adjacency.detach().to(device="cpu", dtype=torch.float32).clone()
    else:
        matrix = torch.as_tensor(np.asarray(adjacency, dtype=np.float32))
    if matrix.shape != (total, total):
        raise FieldHarnessError(
            f"adjacency has shape {tuple(matrix.shape)}; expected ({total}, {total}), one row "
            "and column per class of all tasks"
        )
    if not torch.isfinite(matrix).all() or (matrix < 0).any():
        raise FieldHarnessError(
            "adjacency has a negative or non-finite entry; expected finite weights >= 0"
        )
    return matrix


def _weight_tensor(weight: Any, n_classes: int, name: str) -> Tensor:
    if weight is None:
        return torch.ones(n_classes)
    if isinstance(weight, Tensor):
        tensor = weight.detach().to(device="cpu", dtype=torch.float32)
    else:
        tensor = torch.as_tensor(np.asarray(weight, dtype=np.float32))
    if tensor.shape != (n_classes,) or not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise FieldHarnessError(
            f"{name} is {tensor.tolist()}; expected {n_classes} finite weights >= 0"
        )
    return tensor
