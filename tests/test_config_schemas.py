"""Structured configs (jaxws.schemas): one source of defaults, closed sections, keys that apply.

Every check composes the real config (no method runs), so the whole file takes seconds.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from omegaconf import OmegaConf

from jaxws.cli import CONFIG_DIR, _resolved, check_applicable, check_schema_keys
from jaxws.config import ConfigError
from jaxws.data.readers import EventsConfig
from jaxws.methods.anomaly.settings import AnomalyTestConfig, ClassifierConfig, VAEConfig
from jaxws.methods.hunt.experiment import HuntConfig
from jaxws.methods.injection_study import StudyConfig, StudyTrainingConfig
from jaxws.methods.lhco import LHCOConfig
from jaxws.methods.meta.config import MetaConfig
from jaxws.methods.meta.study import TaskConfig
from jaxws.methods.nplm.config import ExponentialToyConfig, NPLMConfig
from jaxws.methods.pretrain import PretrainConfig
from jaxws.methods.transfer import FineTuneConfig, SourceConfig
from jaxws.models.registry import ModelSection
from jaxws.schemas import JET_CNN_FIELDS, MLP_FIELDS, SCHEMAS, dataclass_fields
from jaxws.simulate.sources import PythiaConfig, SimulatorConfig
from jaxws.simulate.tpc import TPCConfig
from jaxws.track import TrackingConfig

CONF = Path(CONFIG_DIR)
GROUPS_WITH_SCHEMA = ("data", "model", "training", "study", "tracking")

# (overrides, section path, dataclass, fields the YAML must set (None: all init fields)).
# The first option of each group is the one config.yaml chooses, so these dataclass defaults
# are the defaults of `python -m jaxws` itself.
SECTIONS = [
    ((), "training", StudyTrainingConfig, None),
    ((), "study", StudyConfig, None),
    ((), "data", SimulatorConfig, None),
    ((), "model", ModelSection, JET_CNN_FIELDS),
    ((), "tracking", TrackingConfig, None),
    (("model=mlp",), "model", ModelSection, MLP_FIELDS),
    (("data=pythia",), "data", PythiaConfig, None),
    (("data=events",), "data", EventsConfig, None),
    (("method=transfer",), "method.source", SourceConfig, None),
    (("method=transfer",), "method.pretrain", PretrainConfig, None),
    (("method=transfer",), "method.fine_tune", FineTuneConfig, None),
    (("method=maml",), "method.meta", MetaConfig, None),
    (("method=maml",), "method.tasks", TaskConfig, None),
    # Meta-learning: which parameters fine-tuning trains is the learner's choice, not a key.
    (("method=maml",), "method.fine_tune", FineTuneConfig, ("learning_rate", "patience")),
    (("experiment=nplm",), "data", ExponentialToyConfig, None),
    (("experiment=nplm",), "method", NPLMConfig, None),
    (("experiment=anomaly",), "data", TPCConfig, None),
    (("experiment=anomaly",), "method.vae", VAEConfig, None),
    (("experiment=anomaly",), "method.classifier", ClassifierConfig, None),
    (("experiment=anomaly",), "method.test", AnomalyTestConfig, None),
    (("method=lhco",), "method", LHCOConfig, None),
    (("experiment=hunt",), "method", HuntConfig, None),
]


def config(overrides=()):
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def _plain(value):
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _section(cfg, path: str) -> dict:
    node = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    for part in path.split("."):
        node = node[part]
    return node


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("entry", sorted(set(v[:2] for v in SCHEMAS.values())))
def test_schemas_read_from_source_equal_the_imported_dataclasses(entry):
    """`jaxws.schemas` reads the dataclasses' fields from source (no jax import at the entry
    point); they must be exactly the init fields and types of the imported class."""
    import importlib
    import typing

    module, name = entry
    cls = getattr(importlib.import_module(module), name)
    hints = typing.get_type_hints(cls)
    expected = {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}
    assert dataclass_fields(module, name) == expected


def test_every_option_and_experiment_sets_every_value():
    """No composed config leaves a schema key MISSING, so no run takes a dataclass default."""
    choices = [[f"{g}={o}"] for g in GROUPS_WITH_SCHEMA for o in _options(g)]
    choices += [[f"method={o}"] for o in _options("method") if o != "meta_base"]
    choices += [[f"experiment={o}"] for o in _options("experiment")]
    for overrides in choices:
        _resolved(config(overrides))  # raises ConfigError naming a MISSING key


@pytest.mark.parametrize(
    "case", SECTIONS, ids=[f"{'+'.join(c[0]) or 'default'}:{c[1]}" for c in SECTIONS]
)
def test_the_yaml_sets_every_field_and_library_defaults_equal_it(case):
    """One source of values: the YAML sets every field the dataclass reads, and where the
    dataclass also has a default (for library use) the default is the YAML value."""
    overrides, path, cls, fields = case
    section = _section(config(overrides), path)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    expected = names if fields is None else list(fields)
    missing = sorted(set(expected) - set(section))
    assert not missing, f"{path} lacks {missing} (it would take the dataclass default)"
    for field in dataclasses.fields(cls):
        if field.name not in expected or (
            cls is ModelSection and field.name in ("_target_", "name")
        ):
            continue  # one class reads both kinds of model: its default names the default one
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            continue
        assert _plain(default) == _plain(section[field.name]), (
            f"{cls.__name__}.{field.name} = {default!r}, but {path}.{field.name} = "
            f"{section[field.name]!r} in the YAML"
        )


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (["training.learning_rat=1"], ["learning_rat", "StudyTrainingConfig"]),
        (["model.hidden=3"], ["hidden", "JetCNNSection"]),
        (["model.feature_widths=[3]"], ["feature_widths", "JetCNNSection"]),  # MLP key, CNN
        (["model=mlp", "model.conv_features=[3]"], ["conv_features", "MLPSection"]),
        (["training.batch_size=big"], ["training.batch_size", "Integer"]),
        (["data.resolution=1.5"], ["data.resolution"]),
        (["experiment=nplm", "data.n_background=5"], ["n_background"]),
    ],
)
def test_hydra_refuses_unknown_keys_and_wrong_types_at_compose_time(overrides, names):
    with pytest.raises(HydraException) as caught:
        config(overrides)
    text = f"{caught.value} {caught.value.__cause__}"
    for name in names:
        assert name in text, text


def test_a_forced_key_and_a_missing_value_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['training.learning_rat'\]"):
        check_schema_keys(config(["+training.learning_rat=1"]))
    with pytest.raises(ConfigError, match=r"config lacks a value for model._target_"):
        _resolved(config(["model=base_mlp"]))  # the bare schema: no values


@pytest.mark.parametrize(
    ("overrides", "method"),
    [
        (["experiment=nplm", "training.learning_rate=1"], "nplm"),
        (["experiment=nplm", "model=mlp"], "nplm"),
        (["experiment=anomaly", "++training.patience=3"], "anomaly"),
        (["experiment=anomaly", "study.n_pseudo_experiments=2"], "anomaly"),
        (["method=lhco", "data.resolution=8"], "lhco"),
    ],
)
def test_sections_the_method_does_not_read_are_refused(overrides, method):
    key = overrides[1].split("=")[0].lstrip("+")
    with pytest.raises(ConfigError, match=rf"{key} does not apply to method={method}"):
        check_applicable(config(overrides), overrides)


def test_sections_the_method_reads_are_accepted():
    for overrides in (
        ["training.learning_rate=1e-3", "study.n_pseudo_experiments=2", "model=mlp"],
        ["experiment=nplm", "data.n_reference=100", "method.epochs=3"],
        ["experiment=anomaly", "data.g1=0.1", "method.vae.max_epochs=2"],
    ):
        check_applicable(config(overrides), overrides)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], "SimulatorSource"),
        (["data=pythia"], "PythiaSource"),
        (
            ["data=events", "data.background=b.h5", "+data.signals={s:s.h5}", "data.signal=s"],
            "EventsSource",
        ),
    ],
)
def test_the_data_file_names_its_event_source_class(overrides, expected):
    from jaxws.simulate.sources import make_source

    cfg = config(overrides)
    source = make_source(cfg.data)
    assert type(source).__name__ == expected == cfg.data._target_.rsplit(".", 1)[1]
    assert source.config.source == type(source).config_class.source  # the short name stays


@pytest.mark.parametrize("option", ["slim_cnn", "paper_cnn", "mlp"])
def test_the_model_file_names_its_module_class(option):
    from jaxws.models.registry import build_model

    cfg = config([f"model={option}"])
    model = build_model(cfg.model)
    assert type(model).__name__ == cfg.model._target_.rsplit(".", 1)[1]
    widths = cfg.model.get("conv_features") or cfg.model.feature_widths
    assert tuple(getattr(model, "conv_features", None) or model.feature_widths) == tuple(widths)


def test_a_target_that_is_no_model_or_source_is_refused_by_name():
    from jaxws.models.registry import build_model
    from jaxws.simulate.sources import make_source

    with pytest.raises(ConfigError, match=r"model._target_ 'jaxws.models.nosuch.Net': no such"):
        build_model(config(["model._target_=jaxws.models.nosuch.Net"]).model)
    with pytest.raises(ConfigError, match=r"model._target_ 'collections.OrderedDict' is not a"):
        build_model(config(["model._target_=collections.OrderedDict"]).model)
    with pytest.raises(ConfigError, match=r"data._target_ 'collections.OrderedDict' is not an"):
        make_source(config(["data._target_=collections.OrderedDict"]).data)


def test_fine_tuning_choices_of_the_meta_learner_are_refused_as_keys():
    from jaxws.methods.meta.study import _sections

    _sections(config(["method=maml"]))
    with pytest.raises(ConfigError, match=r"method.fine_tune.freeze_features does not apply"):
        _sections(config(["method=maml", "+method.fine_tune.freeze_features=false"]))


def test_a_re_exported_dataclass_is_read_where_it_is_defined():
    """`jaxws.simulate.tpc` re-exports `TPCConfig` from its detector module."""
    assert dataclass_fields("jaxws.simulate.tpc", "TPCConfig") == dataclass_fields(
        "jaxws.simulate.tpc.detector", "TPCConfig"
    )
    with pytest.raises(LookupError, match=r"no class NoSuchConfig in jaxws\.simulate\.sources"):
        dataclass_fields("jaxws.simulate.sources", "NoSuchConfig")
