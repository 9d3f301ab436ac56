"""evaluator_service package."""
