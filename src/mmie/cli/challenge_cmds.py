"""``mmie challenge align-noise|aug-noise`` and ``mmie data sample``: thin commands over
:mod:`mmie.data.challenge` and :mod:`mmie.data.sampling` (docs/challenges.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from mmie.cli.typer_apps import app, data_app
from mmie.data.challenge import DEFAULT_SEED, write_align_noise, write_aug_noise

challenge_app = typer.Typer(help="Noise challenge sets (FocalMRE Table 2) for any model.", no_args_is_help=True)
app.add_typer(challenge_app, name="challenge")

FORMAT_HELP = "Input format (twitter, mnermi, mnre, mremi); detected when omitted."
RATIO_HELP = "Share of the records (align-noise) or of the regions (aug-noise) to corrupt, in [0, 1]."


@challenge_app.command("align-noise")
def align_noise_command(
    source: Path = typer.Argument(..., help="The clean dataset file."),
    out: Path = typer.Argument(..., help="The challenge file to write (same format)."),
    ratio: float = typer.Option(..., "--ratio", help=RATIO_HELP),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Same seed, same set."),
    data_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Give RATIO of the records the images of another record (mismatched image-text pairs)."""
    noise = write_align_noise(source, out, ratio, seed, data_format)
    typer.echo(
        f"wrote {out}: {len(noise.shuffled)} of {len(noise.records)} records given other images "
        f"({noise.unchanged} of them share their donor's images)"
    )


@challenge_app.command("aug-noise")
def aug_noise_command(
    source: Path = typer.Argument(..., help="The clean dataset file (MRE-MI layout: images_vg.pth beside it)."),
    out_dir: Path = typer.Argument(..., help="Folder to write: the records, a noisy images_vg.pth and images_vg/."),
    ratio: float = typer.Option(..., "--ratio", help=RATIO_HELP),
    seed: int = typer.Option(DEFAULT_SEED, "--seed", help="Same seed, same set."),
    crops: Path | None = typer.Option(None, "--crops", help="Crop dictionary (default: images_vg.pth beside SOURCE)."),
    crop_dir: Path | None = typer.Option(None, "--crop-dir", help="Crop folder (default: images_vg/ beside --crops)."),
    key: str = typer.Option("image", "--key", help="Dictionary keys: image (names) or record (ids, MNRE line index)."),
    data_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """Replace RATIO of the regions with a random region of another image, or delete them (half each)."""
    noise = write_aug_noise(
        source, out_dir, ratio, seed, crop_dict=crops, crop_dir=crop_dir, key=key, data_format=data_format
    )
    typer.echo(f"wrote {out_dir}: of {noise.regions} regions, {noise.replaced} replaced and {noise.deleted} deleted")


@data_app.command("sample")
def sample_command(
    source: Path = typer.Argument(..., help="The dataset file to sample (a training split)."),
    out: Path = typer.Argument(..., help="The sample to write (same format)."),
    fraction: float | None = typer.Option(None, "--fraction", help="Keep this stratified share, in (0, 1]."),
    per_label: int | None = typer.Option(None, "--per-label", help="Keep K records of every label (K-shot)."),
    seed: int = typer.Option(42, "--seed", help="Same seed, same sample."),
    data_format: str | None = typer.Option(None, "--format", help=FORMAT_HELP),
) -> None:
    """A seeded low-resource sample, stratified by relation label (RE) or entity-type set (NER)."""
    from mmie.data import read_dataset, write_dataset
    from mmie.data.sampling import sample_records
    from mmie.errors import ConfigError

    if (fraction is None) == (per_label is None):
        raise ConfigError("give exactly one of --fraction and --per-label")
    dataset = read_dataset(source, format=data_format)
    sample = sample_records(dataset.records, fraction=fraction, per_label=per_label, seed=seed)
    write_dataset(sample, out, dataset.format)
    typer.echo(f"wrote {len(sample)} of {len(dataset.records)} records to {out}")
