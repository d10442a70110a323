"""``mmie llm``: a dataset split through a chat model behind an OpenAI-compatible endpoint, scored.

    mmie llm data/twitter2017/valid.txt --url http://127.0.0.1:8000 --model Qwen/Qwen2.5-7B-Instruct \\
        --out runs/llm/qwen_t17 --train data/twitter2017/train.txt --demonstrations 3

URL, model and key come from the flags or from ``MMIE_LLM_URL``, ``MMIE_LLM_MODEL`` and
``MMIE_LLM_API_KEY`` (else ``OPENAI_API_KEY``). ``docs/llm.md`` has the papers' rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mmie.cli.typer_apps import app
from mmie.errors import ConfigError


@app.command("llm")
def llm(
    data: Annotated[Path, typer.Argument(help="The split to run (any format mmie reads).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder: predictions, answers, metrics.")],
    url: Annotated[
        str | None, typer.Option("--url", envvar="MMIE_LLM_URL", help="Endpoint base URL (…/v1 or the server root).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", envvar="MMIE_LLM_MODEL", help="Model name the endpoint serves.")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", envvar="MMIE_LLM_API_KEY", help="Bearer key (else $OPENAI_API_KEY).", show_default=False
        ),
    ] = None,
    template: Annotated[
        str | None, typer.Option("--template", help="mner-mi-gpt4 | mner-mi-minigpt4 (NER), qa4re (RE).")
    ] = None,
    images: Annotated[
        str, typer.Option("--images", help="none | first | all: image parts sent with the text.")
    ] = "none",
    image_dir: Annotated[Path | None, typer.Option("--image-dir", help="Folder of the records' images.")] = None,
    train: Annotated[Path | None, typer.Option("--train", help="Training split: demonstrations, RE labels.")] = None,
    demonstrations: Annotated[int, typer.Option("--demonstrations", "-k", min=0, help="Random demonstrations.")] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the demonstrations' draw.")] = 0,
    max_tokens: Annotated[int, typer.Option("--max-tokens", min=1, help="Answer length limit.")] = 256,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 0.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Requests at once.")] = 4,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per request.")] = 120.0,
    retries: Annotated[int, typer.Option("--retries", min=0, help="Retries on 429/5xx/time-outs.")] = 5,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the first N records.")] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Answer cache folder (default OUT/cache).")] = None,
    entity_types: Annotated[
        Path | None, typer.Option("--entity-types", help="RE: JSON lines of head/tail types, to filter the options.")
    ] = None,
    data_format: Annotated[str | None, typer.Option("--format", help="Data format; detected when omitted.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Row name in reports.")] = None,
) -> None:
    """Ask a chat model about every post (NER) or instance (RE) of DATA and score its answers."""
    from pydantic import ValidationError

    from mmie.errors import config_error
    from mmie.llm import LlmSettings, run_llm

    if not url or not model:
        raise ConfigError("give the endpoint and model: --url and --model (or MMIE_LLM_URL, MMIE_LLM_MODEL)")
    try:
        settings = LlmSettings(
            base_url=url,
            model=model,
            api_key=api_key or os.environ.get("OPENAI_API_KEY"),
            template=template,
            images=images,
            image_dir=image_dir,
            demonstrations=demonstrations,
            seed=seed,
            max_tokens=max_tokens,
            temperature=temperature,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=retries,
            limit=limit,
            name=name,
        )
    except ValidationError as error:
        raise config_error(error) from None

    def progress(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            typer.echo(f"  {done}/{total} answers", err=True)

    summary = run_llm(
        data,
        out,
        settings,
        train_path=train,
        data_format=data_format,
        cache_dir=cache,
        entity_types=entity_types,
        progress=progress,
    )
    tokens = ", ".join(f"{key} {value}" for key, value in summary.tokens.items()) or "not reported"
    typer.echo(
        f"{summary.records} records: {summary.asked} asked ({summary.requests} requests, {summary.retries} retries), "
        f"{summary.from_cache} from the cache; {summary.unparseable} unparseable, {summary.unmapped} unmapped"
    )
    typer.echo(f"tokens: {tokens}")
    scores = summary.scores
    typer.echo(
        f"P {100 * scores['precision']:.2f}  R {100 * scores['recall']:.2f}  F1 {100 * scores['f1']:.2f}  -> {out}"
    )
