"""Running one workflow job: log to its file, and fail with one line on a known error."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from typing import Any

from pretrain_mix.errors import PretrainMixError


def run_logged(log_path: str, job: Callable[..., Any], **kwargs: Any) -> Any:
    """Call job(**kwargs) with stderr and logging sent to `log_path`.

    A PretrainMixError ends the job with its one-line message (in the log and on the
    terminal, which Snakemake shows next to the failed rule); anything else keeps its traceback.
    """
    terminal = sys.stderr
    with open(log_path, "w", encoding="utf-8", buffering=1) as log_file:
        sys.stderr = log_file
        logging.basicConfig(
            stream=log_file,
            level=logging.INFO,
            format="%(asctime)s %(levelname)s %(message)s",
            force=True,
        )
        try:
            return job(**kwargs)
        except PretrainMixError as exc:
            message = f"ERROR {type(exc).__name__}: {exc}"
            print(message, file=log_file)
            print(message, file=terminal)
            raise SystemExit(1) from None
        except BaseException:
            traceback.print_exc(file=log_file)  # an unexpected failure: keep the whole story
            raise
        finally:
            sys.stderr = terminal
