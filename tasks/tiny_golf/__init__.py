"""tiny-golf: the best byte-level language model under an artifact cap and time budgets."""
