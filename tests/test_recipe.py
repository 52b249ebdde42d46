"""Recipes: defaults, overrides, arms, and one-line errors naming file, key and choices."""

import re

import pytest

from ablate.recipe import DEFAULTS, RecipeError, load_recipe, parse_set

STUDY = {"epochs": 100, "batch_size": 100, "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0,
         "schedule": "cosine", "min_lr": 2e-5, "augment": True}


def write(tmp_path, text):
    path = tmp_path / "r.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_studys_protocol():
    assert {k: DEFAULTS["train"][k] for k in STUDY} == STUDY
    arm = load_recipe("recipes/vgg38.toml")[0]
    assert arm.config["model"] == {"arch": "vgg38", "norm": "none", "shortcut": "none", "width": 32}
    assert arm.config["data"]["dataset"] == "cifar100"


def test_overrides_and_set_apply_with_types():
    arm = load_recipe("recipes/vgg38.toml", {"model.norm": "bn", **dict([parse_set("train.lr=1e-2")])})[0]
    assert arm.config["model"]["norm"] == "bn" and arm.config["train"]["lr"] == 0.01
    assert parse_set("data.dataset=synthetic") == ("data.dataset", "synthetic")
    assert parse_set("train.augment=false") == ("train.augment", False)


def test_arms_inherit_the_base_and_hash_their_config():
    arms = load_recipe("recipes/quickstart.toml")
    assert [a.name for a in arms] == ["VGG08", "VGG38", "VGG38 BN", "VGG38 RC", "VGG38 BN+RC"]
    assert arms[4].config["model"]["norm"] == "bn" and arms[4].config["model"]["shortcut"] == "identity"
    assert arms[4].config["data"]["num_classes"] == 10
    assert len({a.dirname() for a in arms}) == 5
    assert arms[1].dirname().startswith("vgg38-none-none-lr1e-3-s0-")


@pytest.mark.parametrize("text,message", [
    ("[train]\nlrr = 0.1\n", "r.toml: unknown key 'train.lrr'; valid keys in [train]: epochs, batch_size"),
    ("[train]\nlr = 'fast'\n", "r.toml: train.lr = 'fast' must be float, like 0.001"),
    ("[train]\nepochs = 2.5\n", "r.toml: train.epochs = 2.5 must be int, like 100"),
    ("[model]\nnorm = 'bnn'\n", "r.toml: model.norm = 'bnn': unknown norm 'bnn'; available: bn (ablate), none (ablate)"),
    ("[model]\nshortcut = 'skip'\n", "r.toml: model.shortcut = 'skip': unknown shortcut 'skip'; available:"),
    ("[train]\noptimizer = 'lamb'\n", "r.toml: train.optimizer = 'lamb' is not valid; choose one of: adam, adamw, sgd"),
    ("[data]\ndataset = 'imagenet'\n", "r.toml: data.dataset = 'imagenet': unknown dataset 'imagenet'; available: cifar10"),
    ("[model]\ndepthh = 20\n", "r.toml: unknown key 'model.depthh' for architecture 'vgg38'; valid: arch, norm, shortcut"),
    ("[trian]\nlr = 0.1\n", "r.toml: unknown table or key 'trian'; valid: name, required_plugins"),
    ("[train]\nlr = -1.0\n", "r.toml: train.lr = -1.0 must not be negative"),
    ("[[callbacks]]\nname = 'nope'\n", "r.toml: callbacks.name = 'nope': unknown callback 'nope'"),
    ("[train\n", "r.toml: not valid TOML"),
])
def test_bad_recipes_give_one_line_errors(tmp_path, text, message):
    with pytest.raises(RecipeError) as exc:
        load_recipe(write(tmp_path, text))
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_missing_file_and_bad_set(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.toml")
    with pytest.raises(RecipeError, match="expected section.key=value"):
        parse_set("lr=0.1")


def test_bad_input_on_the_cli_is_one_line_and_leaves_no_run(cli, tmp_path):
    out = tmp_path / "run"
    result = cli("run", "recipes/vgg38.toml", "--norm", "bnn", "--out", str(out))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: recipes/vgg38.toml: model.norm = 'bnn': unknown norm 'bnn'; available: bn (ablate), ")
    assert not out.exists()


@pytest.mark.parametrize("overrides,message", [
    ({"trian.lr": 0.1}, "r.toml: unknown table or key 'trian'"),
    ({"train.batch_size": 0}, "r.toml: train.batch_size = 0 must be at least 1"),
    ({"train.epochs": 0}, "r.toml: train.epochs = 0 must be at least 1"),
    ({"train.lr": float("nan")}, "r.toml: train.lr = nan must be a finite number"),
    ({"train.seed": 2**64}, "must be below 2**32"),
])
def test_bad_overrides_are_one_line_errors(tmp_path, overrides, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(write(tmp_path, "[model]\narch = 'vgg08'\n"), overrides)


@pytest.mark.parametrize("text,message", [
    ("arms = [1]\n", "r.toml: arms must be a list of tables"),
    ("required_plugins = 'abc'\n", "r.toml: required_plugins must be a list of strings"),
    ("[[arms]]\nname = 'a'\n[arms.trian]\nlr = 0.5\n", "r.toml (arm 'a'): unknown table or key 'trian'"),
])
def test_malformed_tables_are_one_line_errors(tmp_path, text, message):
    with pytest.raises(RecipeError, match=re.escape(message)):
        load_recipe(write(tmp_path, text))


def test_cli_callbacks_add_to_the_recipes(tmp_path, register_plugin):
    from ablate.hookspecs import hookimpl

    class Plugin:
        @hookimpl
        def register_callbacks(self, register):
            register("probe", lambda **options: options)

    register_plugin(Plugin(), name="probe")
    path = write(tmp_path, "[[callbacks]]\nname = 'probe'\nfactor = 3\n")
    arm = load_recipe(path, {"callbacks": [{"name": "probe"}]})[0]
    assert arm.config["callbacks"] == [{"name": "probe", "factor": 3}, {"name": "probe"}]


def test_where_and_how_a_run_trains_do_not_change_its_identity():
    base = load_recipe("recipes/vgg38.toml")[0]
    moved = load_recipe("recipes/vgg38.toml", {"data.dir": "/elsewhere", "data.download": True, "train.device": "cpu",
                                               "train.threads": 1, "gradflow.every": 0})[0]
    assert base.dirname() == moved.dirname()
    assert base.dirname() != load_recipe("recipes/vgg38.toml", {"train.lr": 0.01})[0].dirname()


def test_callbacks_that_only_record_are_not_part_of_the_identity(register_plugin):
    from ablate.hookspecs import hookimpl

    class Tracker:
        records_only = True

    class Plugin:
        @hookimpl
        def register_callbacks(self, register):
            register("tracker", Tracker)
            register("amplify", lambda **options: options)

    register_plugin(Plugin(), name="callbacks")
    base = load_recipe("recipes/vgg38.toml")[0]
    tracked = load_recipe("recipes/vgg38.toml", {"callbacks": [{"name": "tracker"}]})[0]
    amplified = load_recipe("recipes/vgg38.toml", {"callbacks": [{"name": "amplify"}]})[0]
    assert tracked.config["callbacks"] == [{"name": "tracker"}]
    assert base.dirname() == tracked.dirname() != amplified.dirname()
