"""`--engine ray`: the same batch job on a Ray cluster, with Ray Data and one scorer per GPU.

Each actor loads the model once and scores whole items (one conversation and its candidates per call, like the local
engine), so the output is the same as a single-process run. For `probe`, an actor runs probing.probe_item on each
item instead, and returns its probe record beside the scores. Connects to a running cluster when RAY_ADDRESS is set,
else starts a local Ray instance.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace

import numpy as np

from .config import AppConfig
from .results import ScoreResult


class ScorerActor:
    """A Ray Data UDF: the model is loaded once per actor, in the constructor, from the run's configuration."""

    def __init__(self, settings: dict, probes: list[str] | None = None):
        from .probes import by_names

        self.scorer = AppConfig(**settings).load_scorer()
        self.probes = None if probes is None else by_names(probes)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results, extras = [], []
        for m, c in zip(batch["messages"], batch["candidates"]):
            messages, candidates = json.loads(m), json.loads(c)
            if self.probes is None:
                result, extra = self.scorer.score(messages, candidates), None
            else:
                from .probing import probe_item

                result, extra = probe_item(self.scorer, messages, candidates, self.probes)
            results.append(json.dumps(result.to_dict()))
            extras.append(json.dumps(extra))
        return {"item_id": batch["item_id"], "result": np.array(results, dtype=object),
                "extra": np.array(extras, dtype=object)}  # fmt: skip


LOCAL_SYSTEM_CONFIG = {"worker_niceness": 0}
"""A local instance's workers run at the driver's priority. Ray's default (niceness 15, for background workers) let
any other busy process on the machine starve the actors, which do the whole job: beside two CPU-bound processes on
2 cores, loading the scorer in two actors took 7 minutes instead of 10 seconds."""


def connect() -> None:
    """Join the cluster at RAY_ADDRESS, or start a local Ray instance (once per process)."""
    import ray

    if ray.is_initialized():
        return
    local = {} if os.environ.get("RAY_ADDRESS") else {"_system_config": LOCAL_SYSTEM_CONFIG}
    ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False, **local)


def ray_engine(config: AppConfig, workers: int | None = None, probes: tuple | None = None):
    """run(items) yields (item_id, result, extra) like cli.local_engine: extra is the probe record with `probes`
    (probes.Probe, sent to the actors by name), else None."""
    import ray
    import torch

    from .backend import demo_checkpoint

    connect()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    workers = workers or max(1, gpus)
    model = config.model or str(demo_checkpoint.ensure())  # built once here, not by every actor at once
    settings = asdict(replace(config, model=model, device=config.device or ("cuda" if gpus else "cpu")))
    names = None if probes is None else [p.name for p in probes]

    def run(items):
        rows = [{"item_id": i.item_id, "messages": json.dumps(i.messages), "candidates": json.dumps(i.candidates)}
                for i in items]  # fmt: skip
        ds = ray.data.from_items(rows).map_batches(
            ScorerActor,
            fn_constructor_kwargs={"settings": settings, "probes": names},
            batch_size=4,
            concurrency=workers,
            num_gpus=1 if gpus else 0,
            num_cpus=1,
        )
        for row in ds.iter_rows():
            yield row["item_id"], ScoreResult.from_dict(json.loads(row["result"])), json.loads(row["extra"])

    del torch  # imported only to fail early here if the worker environment lacks it
    return run
