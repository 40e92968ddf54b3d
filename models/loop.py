"""The resumable training loop shared by `train.py` (one head) and `train_mt.py` (several).

Everything a killed session needs to continue exactly lives in `<state_dir>/ckpt.pt`: model,
optimiser, scheduler, RNG, position in the epoch, early-stopping state and the dev history. It
is rewritten every `checkpoint_every` steps, after each dev evaluation, at epoch ends and when
`stop_after` ends a call early; the best dev weights are kept in `<state_dir>/best.pt`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

Step = Callable[[list[int]], Any]  # one optimiser step on a batch of example indices -> loss
DevEval = Callable[[], dict[str, float]]  # dev scores of the current weights


@dataclass
class LoopConfig:
    epochs: int
    eval_every: int = 0  # steps between dev evaluations; 0 = once per epoch
    patience: int = 2
    checkpoint_every: int = 200
    stop_after: int | None = None  # return after N steps in this call (state saved)
    select: str = "dev_macro_f1"  # dev score that picks the best weights


def prepare_run(threads: int | None, seed: int) -> str:
    """Threads and seeds of a training run, and its device (the same for every trainer)."""
    import torch

    from finsentry.models.runtime import seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    return "cuda" if torch.cuda.is_available() else "cpu"


def fresh_state() -> dict[str, Any]:
    return {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "best": -1.0, "best_step": 0,
            "bad_evals": 0, "history": [], "done": False, "seconds": 0.0}


class ResumableLoop:
    """Owns the state folder; `run` trains until done, early stop or `stop_after`."""

    def __init__(self, state_dir: Path, model: Any, opt: Any, sched: Any, device: str,
                 cfg: LoopConfig) -> None:
        import torch

        self.dir = Path(state_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.model, self.opt, self.sched, self.device, self.cfg = model, opt, sched, device, cfg
        self.ckpt = self.dir / "ckpt.pt"
        self.st = fresh_state()
        if self.ckpt.is_file():
            saved = torch.load(self.ckpt, map_location=device, weights_only=False)
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            sched.load_state_dict(saved["sched"])
            self.st = saved["state"]
            torch.set_rng_state(saved["rng"])
            log.info("resumed from %s at step %d", self.ckpt, self.st["global_step"])

    def save(self) -> None:
        import torch

        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                    "sched": self.sched.state_dict(), "state": self.st,
                    "rng": torch.get_rng_state()}, tmp)
        tmp.replace(self.ckpt)

    def _evaluate(self, dev_eval: DevEval) -> bool:
        """Record dev scores, keep the best weights; True when early stopping says stop."""
        import torch

        st = self.st
        scores = dict(dev_eval())
        scores.update(step=st["global_step"], epoch=st["epoch"])
        st["history"].append(scores)
        log.info("dev %s", scores)
        if scores[self.cfg.select] > st["best"]:
            st.update(best=scores[self.cfg.select], best_step=st["global_step"], bad_evals=0)
            torch.save(self.model.state_dict(), self.dir / "best.pt")
        else:
            st["bad_evals"] += 1
        return bool(st["bad_evals"] >= self.cfg.patience)

    def run(self, epoch_batches: Callable[[int], list[list[int]]], step: Step,
            dev_eval: DevEval) -> dict[str, Any] | None:
        """Train; None when finished (best weights in best.pt), else {"stopped_at_step": n}."""
        from tqdm.auto import tqdm

        st, cfg = self.st, self.cfg
        t_seg = time.monotonic()
        steps_here = 0
        self.model.train()
        stop = st["done"]
        while not stop and st["epoch"] < cfg.epochs:
            batches = epoch_batches(st["epoch"])
            bar = tqdm(total=len(batches), initial=st["step_in_epoch"],
                       desc=f"epoch {st['epoch'] + 1}/{cfg.epochs}", mininterval=5)
            for b in batches[st["step_in_epoch"]:]:
                loss = step(b)
                st["step_in_epoch"] += 1
                st["global_step"] += 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss):.3f}", refresh=False)
                if cfg.eval_every and st["global_step"] % cfg.eval_every == 0:
                    stop = self._evaluate(dev_eval)
                    self.model.train()
                    if stop:
                        break
                steps_here += 1
                if cfg.stop_after and steps_here >= cfg.stop_after:
                    st["seconds"] += time.monotonic() - t_seg
                    self.save()
                    log.info("stopping after %d steps as asked; rerun to resume", steps_here)
                    return {"stopped_at_step": st["global_step"]}
                if st["global_step"] % cfg.checkpoint_every == 0:
                    st["seconds"] += time.monotonic() - t_seg
                    t_seg = time.monotonic()
                    self.save()
            bar.close()
            if not stop:
                st["epoch"] += 1
                st["step_in_epoch"] = 0
                if not cfg.eval_every or st["global_step"] % cfg.eval_every:
                    stop = self._evaluate(dev_eval)
                    self.model.train()
            st["seconds"] += time.monotonic() - t_seg
            t_seg = time.monotonic()
            self.save()
        st["done"] = True
        self.save()
        return None

    def load_best(self) -> None:
        import torch

        self.model.load_state_dict(torch.load(self.dir / "best.pt", map_location=self.device))
