"""``python -m breedclf``: the command line (what ``torchrun -m breedclf train ...`` runs)."""

from breedclf.cli import main

main()
