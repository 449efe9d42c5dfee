"""Every kind of bad input we know of, and what each gets.

    python -m experiments.bad_inputs --out experiments/results/bad_inputs.md

Each case calls the library, a trainer, the search or a CLI as a user
would, with one bad value, and is classed by what happens:

- ``clear``: a ``ValueError`` (or the checkpoint / NaN errors, or
  ml_collections' own refusal of a value of another type) whose message
  names the field or argument (the case's ``names``);
- ``obscure``: another exception, or a message that does not name it;
- ``silent``: no error at all (for a bad input);
- ``accepted`` / ``refused``: for the valid inputs listed beside them
  (NumPy scalars, ...), which must be accepted.

Trainer cases run the digits job with 2 steps, so a case that is not
caught up front finishes quickly (and shows as ``silent``). The test
``tests/test_bad_inputs.py`` runs every case and requires ``clear`` or
``accepted`` for all. Checkpoint damage has its own 17 cases in
``tests/test_checkpointing.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from typing import List, Tuple

from dropgraph_jax.training import checkpointing, common
from experiments.bad_input_cases import Case, cli_cases, library_cases
from experiments.bad_input_trainer_cases import (
  other_trainer_cases,
  trainer_cases,
)

CLEAR_ERRORS = (ValueError, checkpointing.CorruptCheckpointError,
                common.NonFiniteLoss)


def classify(case: Case) -> Tuple[str, str]:
  """``(outcome, message)`` of one case."""
  try:
    with contextlib.redirect_stdout(io.StringIO()), \
        contextlib.redirect_stderr(io.StringIO()):
      case.run()
  except CLEAR_ERRORS as e:
    if case.valid:
      return "refused", str(e)
    return ("clear" if case.names in str(e) else "obscure"), str(e)
  except SystemExit as e:  # a CLI's exit status
    return ("clear" if e.code not in (0, None) else "silent"), f"exit {e.code}"
  except TypeError as e:  # ml_collections refuses a value of another type
    if "Could not override field" in str(e) and case.names in str(e):
      return "clear", str(e)
    return ("refused" if case.valid else "obscure"), \
        f"{type(e).__name__}: {e}"
  except Exception as e:  # noqa: BLE001 (classifying is the point)
    return ("refused" if case.valid else "obscure"), \
        f"{type(e).__name__}: {e}"
  return ("accepted" if case.valid else "silent"), ""

def all_cases(tmp: str, trainers: bool = True) -> List[Case]:
  return (library_cases() + cli_cases(tmp) +
          (trainer_cases() + other_trainer_cases(tmp) if trainers else []))


def table(results) -> str:
  counts = {}
  for case, outcome, _ in results:
    counts[outcome] = counts.get(outcome, 0) + 1
  lines = ["# Bad inputs and what they get", "",
           "Command: `python -m experiments.bad_inputs --out "
           "experiments/results/bad_inputs.md` (what each class means: the "
           "script's docstring).", "",
           "Totals: " + ", ".join(f"{k} {v}" for k, v in sorted(
               counts.items())) + f" (of {len(results)} cases).", "",
           "| group | input | outcome | message (first 110 characters) |",
           "|---|---|---|---|"]
  for case, outcome, message in results:
    text = message.replace("|", "/").replace("\n", " ")[:110]
    lines.append(f"| {case.group} | `{case.what}` | {outcome} | {text} |")
  return "\n".join(lines) + "\n"


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--out", default="")
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    results = [(c, *classify(c)) for c in all_cases(tmp)]
  text = table(results)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text)
  print(text)


if __name__ == "__main__":
  main()
