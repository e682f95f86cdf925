"""The training loop: two augmented views, an encoder, an I-Con / RKDO loss, checkpoints.

One step of self-supervised neighbourhood-KL training, for a batch ``x`` of sample indices ``I``:

    v1, v2 = augment(x), augment(x)                  (batched, per-sample random parameters)
    z1, z2 = chunk(f(cat(v1, v2)), 2)                (L2-normalised embeddings, one forward)
    L      = loss(z1, z2, ids=I, labels=y)           (I-Con, in-step RKDO or temporal RKDO)
    theta <- Adam(theta, dL/dtheta)

Everything a run needs to continue after an interruption is in one atomically written checkpoint
(model, loss, optimiser and scheduler state, the augmentation and global RNG states, the step
counter), so a resumed CPU run ends with the same weights as an uninterrupted one.

``views_forward="joint"`` (default) runs both views as one batch of ``2B``: BatchNorm then
normalises with statistics over both views, as SimCLR's code does (faster, see
``benchmarks/train_speed.py``); ``"separate"`` runs one forward per view, as runs did before the
option existed. ``compile=True`` wraps the forward in ``torch.compile``; checkpoints hold the
uncompiled module's weights. Data parallel
training runs under ``torchrun`` (``torch.distributed``): every rank draws its part of each epoch
from a :class:`~torch.utils.data.DistributedSampler`, losses gather candidates from all ranks, and
only rank 0 writes files. :func:`rkdo.training.trainer.train` sets a run up and runs this loop.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DistributedSampler

from rkdo import distributed
from rkdo._io import write_json_atomic
from rkdo.evaluation import plan_evaluation
from rkdo.fields import FIELDS_FILE, load_fields
from rkdo.training.checkpoint import first_nonfinite, load_weights
from rkdo.training.components import Components, evaluate_parts
from rkdo.training.config import TrainConfig
from rkdo.training.interrupt import Interrupted, StopSignals, signal_name
from rkdo.training.recorder import FieldRecorder
from rkdo.training.rundir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    EVAL_FILE,
    MetricsLog,
    RunLock,
    check_out_dir,
    check_writable,
    load_checkpoint,
    save_checkpoint,
    start_run,
    truncate_metrics,
)

__all__ = ["TrainingError", "TrainingLoop"]


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. a non-finite loss); the message says where and what is kept."""


class TrainingLoop:
    """One process's training run: its set-up, counters, logs, and the step and its follow-ups.

    The epoch's loss is summed on the device and read once per logged line: no host sync in
    the step itself.
    """

    def __init__(self, config: TrainConfig, device: torch.device, out: Path, *, resume: bool,
                 overwrite: bool, progress: bool, lock: RunLock, signals: StopSignals,
                 adapt_batch_size: bool = False) -> None:
        self.config, self.device, self.out, self.signals = config, device, out, signals
        self.progress = progress
        world, rank = distributed.world_size(), distributed.rank()
        self.is_writer = rank == 0
        new_run = not resume and self.is_writer
        if new_run:
            check_writable(out)
        if new_run and out.is_dir():
            lock.acquire()
        if new_run:
            check_out_dir(out, config, overwrite)
        self.parts = parts = Components(config, self.device, world,
                                        adapt_batch_size=adapt_batch_size and not resume)
        if parts.batch_size != config.batch_size:
            if self.is_writer:
                print(f"rkdo train: batch size {parts.batch_size}: the default "
                      f"{config.batch_size} is larger than the {len(parts.data.train)} "
                      "training images (recorded in config.json)", file=sys.stderr)
            self.config = config = replace(config, batch_size=parts.batch_size)
        # made before anything is written: an impossible recording is refused first
        self.recorder = (FieldRecorder(parts.data, parts.augment, parts.loss_call,
                                       config.record_field, config.seed, self.device)
                         if config.record_field and self.is_writer else None)
        # the control channel on which the ranks agree to stop (gloo, whatever the backend)
        self.control = (dist.new_group(backend="gloo") if distributed.is_distributed()
                        and dist.get_backend() != "gloo" else None)
        if config.eval_protocol != "none":
            # a split the evaluation cannot use is refused now, not after training
            plan_evaluation(parts.data.train.labels, parts.data.test.labels,
                            config.eval_protocol, config.probe_train_size)
        if new_run and not lock.held:
            lock.acquire()
            check_out_dir(out, config, overwrite)  # again, now that no one else can start here
        self._counters(world, rank)
        if resume:
            self._restore()
        elif self.is_writer:
            start_run(out, config)
        self._outputs(progress)

    def _counters(self, world: int, rank: int) -> None:
        """This rank's data order, augmentation generator, data on the device and counters."""
        config, parts = self.config, self.parts
        self.sampler = DistributedSampler(
            range(len(parts.data.train)), num_replicas=world, rank=rank, shuffle=True,
            seed=config.seed, drop_last=True,
        )
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + rank)
        self.images = parts.data.train.images.to(self.device)
        self.labels = parts.data.train.labels.to(self.device)
        self.step, self.evals_done = 0, []
        self.epoch_loss, self.epoch_steps = torch.zeros((), device=self.device), 0
        self.checkpoint_step: int | None = None
        self.checkpoint_seconds, self.last_checkpoint = 0.0, time.monotonic()

    def _outputs(self, progress: bool) -> None:
        """The model as trained (DDP, compiled), the metrics log and the progress bar."""
        config, parts = self.config, self.parts
        self.model: nn.Module = parts.model
        if distributed.is_distributed():
            self.model = nn.parallel.DistributedDataParallel(parts.model)
        self.forward: nn.Module = torch.compile(self.model) if config.compile else self.model
        self.log = MetricsLog(self.out, enabled=self.is_writer, config=config)
        self.bar = None
        if progress and self.is_writer:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=parts.total_steps, initial=self.step, unit="step",
                            dynamic_ncols=True, desc=f"{config.method} {config.dataset}")
        self.window_start, self.window_steps = time.perf_counter(), 0

    def _restore(self) -> None:
        """Continue from ``checkpoint.pt``: every state, the counters, the log up to it."""
        parts = self.parts
        state = load_checkpoint(self.out, self.device)
        for key in ("model", "loss", "optimizer", "scheduler"):
            load_weights(getattr(parts, key), state[key], self.out / CHECKPOINT_FILE,
                         self.out / CONFIG_FILE)
        self.generator.set_state(state["rng"]["augment"])
        torch.set_rng_state(state["rng"]["torch"])
        self.step, self.evals_done = int(state["step"]), list(state["evals_done"])
        self.epoch_loss += state["epoch_loss"].to(self.device)
        self.epoch_steps = int(state["epoch_steps"])
        self.checkpoint_step = self.step
        if self.recorder is not None:
            if "fields" in state:
                self.recorder.load_state(state["fields"], self.step)
            elif (self.out / FIELDS_FILE).exists():  # a checkpoint from before they were kept
                fields = load_fields(self.out / FIELDS_FILE)
                self.recorder.load_state({"steps": list(fields.steps), "teacher": fields.teacher,
                                          "student": fields.student}, self.step)
        if self.is_writer:
            # the final evaluation is redone when the run stopped during it
            truncate_metrics(self.out, self.step, redo_eval=self.step == parts.total_steps)

    def run(self, stop_after: int | None, checkpoint_seconds: float = 0.0) -> dict[str, Any]:
        """Train to the end (or to ``stop_after`` steps), then evaluate and write ``eval.json``."""
        config, parts = self.config, self.parts
        self.checkpoint_seconds = checkpoint_seconds
        self.model.train()
        if self.recorder is not None and not self.recorder.steps:
            self.recorder.record(parts.model, self.step)
        # a signal ends the current step first; under torchrun every rank stops at that step
        self.signals.deferring = True
        for step_index, index in parts.batches(self.sampler, self.step, config.epochs):
            if stop_after is not None and step_index >= stop_after:
                self._checkpoint(step_index)
                self._wait_for_writer()
                self._close()
                return {"stopped_at": step_index}
            loss = self._step(step_index, index.to(self.device))
            self._after_step(step_index + 1, loss)
            signum = self._stop_signal()
            if signum is not None:
                self._interrupted(step_index + 1, signum)
        self.signals.deferring = False
        if self.recorder is not None and self.recorder.steps[-1] != parts.total_steps:
            self.recorder.record(parts.model, parts.total_steps)  # the final frame, always
        self._checkpoint(parts.total_steps)
        if self.recorder is not None:
            self.recorder.save(self.out / FIELDS_FILE)
        final_eval = self._evaluate(config.epochs, parts.total_steps)
        if self.is_writer:
            final_eval = {"epoch": config.epochs, "step": parts.total_steps, **final_eval}
            write_json_atomic(self.out / EVAL_FILE, final_eval)
        self._close()
        return final_eval

    def _step(self, step_index: int, index: Tensor) -> Tensor:
        """One optimiser step on the batch ``index``; returns the (detached) loss on the device."""
        config, parts = self.config, self.parts
        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        # the images already live on the device; augmentation keeps them there
        view1, view2 = (view.contiguous(memory_format=memory_format)
                        for view in parts.augment(self.images[index], self.generator))
        autocast = (torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
                    if config.precision == "bf16" else contextlib.nullcontext())
        with autocast:
            if config.views_forward == "joint":
                z1, z2 = self.forward(torch.cat((view1, view2))).chunk(2)
            else:
                z1, z2 = self.forward(view1), self.forward(view2)
            loss = parts.loss_call(z1, z2, labels=self.labels[index], view1=view1, index=index,
                                   step=step_index, view2=view2)
        parts.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        parts.optimizer.step()
        parts.scheduler.step()
        loss = loss.detach()
        self.epoch_loss += loss.float()
        self.epoch_steps += 1
        self.window_steps += 1
        return loss

    def _after_step(self, done: int, loss: Tensor) -> None:
        """Log, record, evaluate and checkpoint after ``done`` steps, as the config asks."""
        config, per_epoch = self.config, self.parts.steps_per_epoch
        end_of_epoch = done % per_epoch == 0
        if done % config.log_every == 0 or end_of_epoch or done == self.parts.total_steps:
            self._log_train(done, float(loss))
        if end_of_epoch:
            self.log.write({"kind": "epoch", "step": done, "epoch": done // per_epoch,
                            "mean_loss": float(self.epoch_loss) / max(self.epoch_steps, 1)})
            self.epoch_loss.zero_()
            self.epoch_steps = 0
        if self.bar is not None:
            self.bar.update(1)
        if self.recorder is not None and done % config.record_every == 0:
            self.recorder.record(self.parts.model, done)
        completed = done // per_epoch
        if end_of_epoch and completed in config.eval_epochs and \
                completed not in self.evals_done and completed != config.epochs:
            self._evaluate(completed, done)
            self.evals_done.append(completed)
            self._checkpoint(done)
        elif (config.checkpoint_every and done % config.checkpoint_every == 0) or (
                self.checkpoint_seconds and
                time.monotonic() - self.last_checkpoint >= self.checkpoint_seconds):
            self._checkpoint(done)

    def _stop_signal(self) -> int | None:
        """The signal that stops the run after this step: this process's, or under torchrun
        any rank's (one small all-reduce on the CPU a step, so that every rank stops here)."""
        if not distributed.is_distributed():
            return self.signals.signum
        flag = torch.tensor([self.signals.signum or 0], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self.control)
        return int(flag.item()) or None

    def _wait_for_writer(self) -> None:
        """Under torchrun, every rank waits here until rank 0 has written its checkpoint.

        Without it a non-writing rank tears its process group down while rank 0 still
        writes, and gloo may abort that rank at exit ("terminate called without an active
        exception", about one stop in ten)."""
        if distributed.is_distributed():
            dist.barrier(group=self.control)

    def _interrupted(self, done: int, signum: int) -> None:
        """A signal arrived during the step that ended at ``done``: checkpoint and stop."""
        self.signals.deferring = False
        self._checkpoint(done)
        self._wait_for_writer()
        self._close()
        where = "" if self.signals.signum is not None else " (sent to another rank)"
        raise Interrupted(signum, (
            f"interrupted by {signal_name(signum)}{where} after step {done} of "
            f"{self.parts.total_steps}; checkpoint written to {self.out / CHECKPOINT_FILE}; "
            f"continue with `rkdo train --resume {self.out}`"))

    def _log_train(self, done: int, loss: float) -> None:
        """A train line (loss, lr, throughput since the last line); stop on a non-finite loss."""
        if not math.isfinite(loss):
            raise TrainingError(
                f"non-finite loss ({loss}) at step {done}; {self._kept()} in {self.out}. "
                "Lower --lr or raise --temperature"
            )
        elapsed = time.perf_counter() - self.window_start
        images_per_s = self.window_steps * self.config.batch_size / max(elapsed, 1e-9)
        self.log.write({"step": done, "epoch": done / self.parts.steps_per_epoch, "loss": loss,
                        "lr": self.parts.scheduler.get_last_lr()[0],
                        "images_per_s": images_per_s})
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", img_s=f"{images_per_s:.0f}")
        self.window_start, self.window_steps = time.perf_counter(), 0

    def _checkpoint(self, at_step: int) -> None:
        """Save everything needed to continue at ``at_step`` (rank 0; never a NaN state)."""
        if not self.is_writer:
            return
        if not bool(torch.isfinite(self.epoch_loss)):
            # a non-finite loss since the last log line: never replace a good checkpoint
            raise TrainingError(
                f"non-finite loss between the last log line and step {at_step}; the last good "
                f"checkpoint is kept. Lower --lr or raise --temperature"
            )
        parts = self.parts
        weights = {"model": parts.model.state_dict(), "loss": parts.loss.state_dict(),
                   "optimizer": parts.optimizer.state_dict()}
        bad = first_nonfinite(weights)
        if bad is not None:
            raise TrainingError(
                f"non-finite weights ({bad}) at step {at_step}; {self._kept()}. Lower --lr "
                "(or --momentum)")
        save_checkpoint(self.out, {
            **weights,
            "scheduler": parts.scheduler.state_dict(),
            "rng": {"augment": self.generator.get_state(), "torch": torch.get_rng_state()},
            "step": at_step,
            "evals_done": self.evals_done,
            "epoch_loss": self.epoch_loss.detach().cpu(),
            "epoch_steps": self.epoch_steps,
            **({"fields": self.recorder.state()} if self.recorder is not None else {}),
        })
        self.log.flush()
        self.checkpoint_step, self.last_checkpoint = at_step, time.monotonic()

    def _kept(self) -> str:
        if self.checkpoint_step is None:
            return "no checkpoint was written"
        return f"the last good checkpoint (step {self.checkpoint_step}) is kept"

    def _evaluate(self, epoch: int, at_step: int) -> dict[str, Any]:
        """Evaluate the encoder (rank 0) and log it; every rank waits for it."""
        config = self.config
        result: dict[str, Any] = {}
        if config.eval_protocol != "none" and self.is_writer:
            result = evaluate_parts(self.parts.model, self.parts, config, self.device,
                                    progress=self.progress)
            self.log.write({"kind": "eval", "epoch": epoch, "step": at_step, **result})
        if distributed.is_distributed():
            dist.barrier()
        return result

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.log.close()
