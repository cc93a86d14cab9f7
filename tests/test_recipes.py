"""Recipes are plugins of the core: a config names one, the loop calls its hooks, its state is
checkpointed and restored on resume; the built-in ones are registered the same way."""
import copy

import pytest
import torch

from repro.config import resolve
from repro.errors import ReproError
from repro.plugins import get_paper
from repro.recipes import JOINT, Recipe, Stage
from repro.registry import RECIPES
from repro.tasks.common import check_network
from repro.train import train_run

CALLS: list[tuple] = []


@RECIPES.register("test_warmup_stage")
class WarmupStage(Recipe):
    """A test plugin: a real-valued warm-up stage before the binary one, a loss term, and a
    counter kept in its state."""

    @classmethod
    def check(cls, options, config):
        if not isinstance(options, dict) or options.get("penalty", 0) < 0:
            raise ReproError(f"train.test_warmup_stage: expected a mapping with penalty >= 0, got {options!r}")

    def __init__(self, options, context):
        super().__init__(options, context)
        self.batches = 0

    def stages(self, stages):
        return [Stage("warmup", frozenset(), frozenset()), *stages]

    def stage_begin(self, model, stage, index):
        CALLS.append(("stage", stage.name, index))

    def epoch_begin(self, model, stage, epoch, epochs):
        CALLS.append(("epoch", stage.name, epoch, epochs))

    def loss(self, loss, inputs, outputs):
        self.batches += 1
        return loss + self.options["penalty"] * 0.0 * outputs[-1].sum()

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = state["batches"]
        CALLS.append(("restored", self.batches))


@pytest.fixture
def config():
    table = get_paper("bulat2019").table("1")
    config = copy.deepcopy(resolve(table, table.row("prelu"), "smoke", 0).config)
    config["train"]["epochs"] = 2
    config["train"]["test_warmup_stage"] = {"penalty": 1.0}
    return config


def test_a_plugin_recipe_runs_its_hooks_and_resumes_with_its_state(workdir, config):
    CALLS.clear()
    steps = []

    def stop_in_stage_two(values, step):
        steps.append(step)
        if step == 3:
            raise KeyboardInterrupt  # after the warm-up stage, before epoch 1 of the binary stage is saved

    with pytest.raises(KeyboardInterrupt):
        train_run(config, workdir / "run", stop_in_stage_two)
    assert ("stage", "warmup", 0) in CALLS and ("stage", "joint", 1) in CALLS
    assert [c for c in CALLS if c[0] == "epoch"][:2] == [("epoch", "warmup", 0, 2), ("epoch", "warmup", 1, 2)]
    CALLS.clear()
    train_run(config, workdir / "run", lambda values, step: steps.append(step))
    assert steps == [1, 2, 3, 3, 4]  # epoch 3 (stage 2, epoch 1) runs again, nothing before it
    restored = [c for c in CALLS if c[0] == "restored"]
    assert restored and restored[0][1] > 0  # the recipe's own state came back from the checkpoint


def test_a_recipe_checks_its_options_before_anything_is_stored(config):
    config["train"]["test_warmup_stage"] = {"penalty": -1}
    with pytest.raises(ReproError, match="test_warmup_stage"):
        check_network(config)


@pytest.mark.parametrize("key, value, message", [
    ("reverse_init", "yes", "train.reverse_init"),
    ("progressive", {"kind": "cubic"}, "train.progressive.kind"),
    ("progressive", {"kind": "tanh", "lambda_start": 5, "lambda_end": 1}, "start <= end"),
    ("distill", {"teacher": "real", "weight": 2}, "train.distill.weight"),
])
def test_built_in_recipes_check_their_options(config, key, value, message):
    config["train"][key] = value
    with pytest.raises(ReproError, match=message):
        check_network(config)


def test_the_built_in_recipes_are_registered_like_a_plugins():
    assert {"reverse_init", "progressive", "distill"} <= set(RECIPES.names())
    assert RECIPES["reverse_init"](True, None).stages([JOINT])[0].quantized == {"input"}


def test_progressive_needs_quantizers_with_a_smooth_counterpart(config):
    config["conv"]["input_quantizer"] = "none"  # nothing to smooth: allowed
    config["train"]["progressive"] = {"kind": "tanh"}
    check_network(config)
    model = torch.nn.Sequential()
    RECIPES["progressive"](config["train"]["progressive"], None).prepare(model)  # a model without quantizers


def test_a_plugin_can_add_a_task_and_an_optimizer(config):
    """Tasks and optimizers are registries like blocks: a plugin's are found by name."""
    from repro.registry import OPTIMIZERS, TASKS
    from repro.tasks import get_task
    from repro.tasks.pose import PoseTask

    @TASKS.register("test_pose_variant")
    class PoseVariant(PoseTask):
        name = "test_pose_variant"

    @OPTIMIZERS.register("test_sgd_nesterov")
    def nesterov(params, train):
        return torch.optim.SGD(params, lr=train["lr"], momentum=0.9, nesterov=True)

    assert isinstance(get_task("test_pose_variant"), PoseVariant)
    config["train"]["optimizer"] = "test_sgd_nesterov"
    check_network(config)
    config["train"]["optimizer"] = "no_such_optimizer"
    with pytest.raises(ReproError, match="train.optimizer: unknown value 'no_such_optimizer'.*test_sgd_nesterov"):
        check_network(config)
    with pytest.raises(ReproError, match="unknown task 'nope'"):
        get_task("nope")
