"""Large-language-model rows: a dataset split through any OpenAI-compatible chat endpoint, scored like a model.

:mod:`~mmie.llm.templates` (the papers' prompts, named and versioned), :mod:`~mmie.llm.client`
(requests with retries), :mod:`~mmie.llm.cache` (answers on disk by hash), :mod:`~mmie.llm.parsing`
(lenient reading, mapped onto spans and labels), :mod:`~mmie.llm.run` (:func:`run_llm`).
``docs/llm.md`` shows how to run the papers' rows.
"""

from mmie.llm.run import LlmSettings, LlmSummary, run_llm

__all__ = ["LlmSettings", "LlmSummary", "run_llm"]
