"""The live trial of the assessment tests, shared."""

from tests.assessments.conftest import h, make_participant, people

__all__ = ["h", "make_participant", "people"]
