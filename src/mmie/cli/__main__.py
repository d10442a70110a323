"""`python -m mmie.cli ...` (and `torchrun ... -m mmie.cli train ...`): the mmie command."""

from mmie.cli import main

if __name__ == "__main__":
    main()
