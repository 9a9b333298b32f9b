"""Gin registrations for the model: import this module before parsing gin files.

    import jaxlt.model.gin_configurables  # noqa: F401

then in a .gin file:

    MODEL_CONFIG = @jaxlt.model.get_config()
    jaxlt.model.get_config.name = 'mt5_base'
    jaxlt.model.get_config.dtype = 'bfloat16'     # any T5Config field is an override

or a fully spelled-out config with `@jaxlt.model.T5Config()` and its fields.
"""

from __future__ import annotations

import gin

from jaxlt.model import config as _config

get_config = gin.external_configurable(_config.get_config, name="get_config", module="jaxlt.model")
T5Config = gin.external_configurable(_config.T5Config, name="T5Config", module="jaxlt.model")
