"""digits-speedrun's standalone scorer (a package only so that wheels ship score.py)."""
