"""The package's public names are exactly `__all__`, and each is importable."""

import evaluator_service


def test_all_exports_exist_and_are_sorted():
    names = evaluator_service.__all__
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in names:
        assert getattr(evaluator_service, name) is not None


def test_no_undeclared_public_members():
    public = {n for n in vars(evaluator_service) if not n.startswith("_")}
    modules = {n for n in public if type(getattr(evaluator_service, n)).__name__ == "module"}
    assert public - modules == set(evaluator_service.__all__)
