"""Errors that end a run with one line a user can act on."""


class PretrainMixError(Exception):
    """Base class: the message is a single line naming what is wrong and what to do."""


class ConfigError(PretrainMixError):
    """The mixture config is invalid; raised before any job runs."""


class DatasetOpenError(PretrainMixError):
    """A dataset could not be opened (offline, gated, wrong name/config/split)."""


class SamplingError(PretrainMixError):
    """Sampling a dataset could not produce what the plan asked for."""
