"""MEND's training budget in time: the loop stops after the iteration that passes it, validating and saving there.

A stand-in for EasyEdit's trainer loop (BaseTrainer.run: count, stop at max_iters, train, validate and save
when the count is a multiple of val_interval) shows which iterations train and where the checkpoint is taken.
"""
from __future__ import annotations

from types import SimpleNamespace

from memla_plugin.easyedit.mend import record_curve, stop_after


class LoopLikeEasyEdit:
    def __init__(self, max_iters: int, val_interval: int) -> None:
        self.config = SimpleNamespace(max_iters=max_iters, val_interval=val_interval)
        self.global_iter, self.trained, self.saved_at, self.echoed = 0, [], [], []

    def train_step(self, batch):
        self.trained.append(self.global_iter)
        return {"loss/edit_train": 1.0 / self.global_iter}

    def echo(self, step, info, pretty=False):
        self.echoed.append(step)

    def run(self, n_batches: int = 100) -> None:
        for _ in range(n_batches):
            self.global_iter += 1
            if self.global_iter >= self.config.max_iters:
                break
            info = self.train_step(None)
            self.echo(self.global_iter, info)
            if self.global_iter % self.config.val_interval == 0:
                self.saved_at.append(self.global_iter)


def test_time_budget_stops_after_the_current_iteration_and_saves_there():
    t = LoopLikeEasyEdit(max_iters=121, val_interval=120)
    done = stop_after(t, 0.0)  # already spent: the first iteration is the last
    t.run()
    assert t.trained == [1] and t.saved_at == [1] and t.global_iter == 2 and done == {"iterations": 1}


def test_without_a_time_budget_the_iteration_count_decides():
    t = LoopLikeEasyEdit(max_iters=13, val_interval=12)
    done = stop_after(t, None)
    curve = record_curve(t)
    t.run()
    assert t.trained == list(range(1, 13)) and t.saved_at == [12] and t.global_iter == 13 and done["iterations"] == 12
    assert [p["iteration"] for p in curve] == list(range(1, 13)) and curve[-1]["loss/edit"] == round(1 / 12, 6)
    assert curve[-1]["split"] == "train"
