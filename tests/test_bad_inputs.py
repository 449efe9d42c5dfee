"""The bad-input sweep of ``experiments/bad_inputs.py``: every case gets a
clear error naming its field (or, for the valid inputs beside them, is
accepted). The table in ``experiments/results/bad_inputs.md`` is this
sweep's output."""

import pytest

from experiments import bad_inputs


def _failures(cases):
  out = []
  for case in cases:
    outcome, message = bad_inputs.classify(case)
    if outcome not in ("clear", "accepted"):
      out.append(f"{case.group} {case.what}: {outcome} {message[:200]}")
  return out


@pytest.mark.slow
def test_library_policy_search_and_cli_inputs(tmp_path):
  cases = bad_inputs.all_cases(str(tmp_path), trainers=False)
  assert len(cases) > 180
  assert _failures(cases) == []


@pytest.mark.slow
def test_trainer_config_inputs(tmp_path):
  cases = (bad_inputs.trainer_cases() +
           bad_inputs.other_trainer_cases(str(tmp_path)))
  assert len(cases) > 50
  assert _failures(cases) == []
  assert not list(tmp_path.glob("**/checkpoints"))  # refused before any work
