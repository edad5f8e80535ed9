"""Child-process entry for the vLLM backend:
``python -m xdetox.components.generate.vllm_worker REQ OUT``.

vLLM spawns its engine and worker processes, which re-import the parent's ``__main__``; running
it from a module whose main is guarded (this one) keeps that safe whatever started the parent
(a KFP executor, pytest, the CLI), and the engine's memory is returned when this process exits,
so the base and the tuned model can be generated one after the other in the same task.

``REQ`` is the JSON request written by
:func:`xdetox.components.generate.vllm_backend.run_jobs_in_worker`.
``OUT`` receives ``{"counts": [...]}``, or ``{"error": message, "type": class}`` for a user
error (exit code 2) so that the parent re-raises it as the same one-line error.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from xdetox.errors import XdetoxError
from xdetox.files import write_json


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m xdetox.components.generate.vllm_worker REQUEST.json RESULT.json")
        return 64
    request_path, result_path = Path(args[0]), Path(args[1])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from xdetox.components.generate.job import GenerationJob
        from xdetox.components.generate.vllm_backend import VLLMOptions, run_jobs

        request = json.loads(request_path.read_text(encoding="utf-8"))
        jobs = [
            GenerationJob.from_dict(job, f"{request_path}: jobs[{i}]")
            for i, job in enumerate(request["jobs"])
        ]
        counts = run_jobs(
            request["model_dir"],
            jobs,
            options=VLLMOptions.from_dict(request.get("options"), f"{request_path}: options"),
            progress=bool(request.get("progress", True)),
        )
    except XdetoxError as exc:
        write_json(result_path, {"error": str(exc), "type": type(exc).__name__})
        return 2
    write_json(result_path, {"counts": counts})
    return 0


if __name__ == "__main__":
    sys.exit(main())
