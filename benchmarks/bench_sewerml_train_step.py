"""Time one training step of each Sewer-ML baseline network on the CPU.

A step is what the runner does per batch: forward pass, the baseline's loss, backward pass and
an SGD update, in fp32 at the papers' input size of 224×224. Inputs are random tensors, so the
numbers measure the networks, not the input pipeline (``bench_sewerml_input.py`` measures that).

Usage:
    python benchmarks/bench_sewerml_train_step.py [--batch-size 8] [--steps 5] [--threads N]

Writes ``benchmarks/results/sewerml_train_step.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from sewerml.adjacency import build_adjacency
from sewerml.benchmark_models import build_model
from sewerml.ctgnn import CTGNN, CTGNNLoss
from sewerml.losses import effective_number_weights, pos_ciw_weights, task_weights

RESULTS = Path(__file__).parent / "results" / "sewerml_train_step.json"
IMAGE_SIZE = 224


def _ctgnn(batch_size: int):
    """CT-GAT with the defect and water-level tasks and a graph from random labels."""
    rng = np.random.default_rng(0)
    task_classes = {"defect": 17, "water": 4}
    labels = {"defect": (rng.random((500, 17)) < 0.1).astype(np.int8),
              "water": rng.integers(0, 4, 500)}
    model = CTGNN(task_classes, build_adjacency(labels, task_classes))
    loss_fn = CTGNNLoss(
        task_classes,
        defect_pos_weight=torch.as_tensor(pos_ciw_weights(), dtype=torch.float32),
        class_weights={"water": torch.as_tensor(
            effective_number_weights(np.bincount(labels["water"], minlength=4)),
            dtype=torch.float32)},
        task_weights=task_weights(("defect", "water")),
    )
    batch = {"defect": torch.from_numpy(labels["defect"][:batch_size]).float(),
             "water": torch.from_numpy(labels["water"][:batch_size]).long()}
    return model, loss_fn, batch


def _bce(name: str, num_classes: int, batch_size: int):
    model = build_model(name, num_classes)
    criterion = torch.nn.BCEWithLogitsLoss()
    batch = {"target": (torch.rand(batch_size, num_classes) < 0.2).float()}
    return model, lambda outputs, b: criterion(outputs, b["target"]), batch


NETWORKS = {
    "ctgnn (ResNet-50 + CT-GAT)": _ctgnn,
    "benchmark stage 1 (Xie et al.)": lambda n: _bce("xie2019", 1, n),
    "benchmark stage 2 (TResNet-L)": lambda n: _bce("tresnet_l", 17, n),
}


def time_steps(model, loss_fn, batch, batch_size: int, steps: int, warmup: int) -> list[float]:
    """Return the wall time of each of ``steps`` training steps after ``warmup`` untimed ones."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    images = torch.randn(batch_size, 3, IMAGE_SIZE, IMAGE_SIZE)
    model.train()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(images), batch)
        loss.backward()
        optimizer.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=8, help="images per step (default 8)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per network")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's choice, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    print(f"CPU training step, {IMAGE_SIZE} px, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    for name, build in NETWORKS.items():
        model, loss_fn, batch = build(args.batch_size)
        times = time_steps(model, loss_fn, batch, args.batch_size, args.steps, args.warmup)
        median = statistics.median(times)
        rows.append({"network": name, "median_s": median, "min_s": min(times),
                     "images_per_s": args.batch_size / median,
                     "parameters": sum(p.numel() for p in model.parameters())})
        print(f"  {name:<32} {median:6.2f} s/step (min {min(times):.2f})  "
              f"{args.batch_size / median:6.1f} images/s")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "batch_size": args.batch_size, "image_size": IMAGE_SIZE, "torch": torch.__version__,
        "results": rows}, indent=2) + "\n")
    print(f"Written: {RESULTS}")


if __name__ == "__main__":
    main()
