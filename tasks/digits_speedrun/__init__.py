"""digits-speedrun: speed under an accuracy gate, on scikit-learn's bundled 8x8 digits."""
