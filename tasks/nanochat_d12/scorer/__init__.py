"""nanochat-d12's standalone scorer (a package only so that wheels ship its scripts)."""
