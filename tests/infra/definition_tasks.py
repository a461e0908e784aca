"""The SageMaker tasks of a definition, found independently of sagemaker_validator (whose coverage
of them test_state_machine checks)."""
from __future__ import annotations

import re


def sagemaker_tasks(definition: dict) -> dict[str, tuple[str, dict]]:
    """{state name: (SageMaker operation name, parameters)} for every SageMaker task."""
    tasks = {}
    for name, state in definition["States"].items():
        resource = state.get("Resource", "")
        match = re.fullmatch(r"arn:aws:states:::(?:aws-sdk:)?sagemaker:(\w+?)(?:\.sync)?", resource)
        if state.get("Type") == "Task" and match:
            action = match.group(1)
            tasks[name] = (action[0].upper() + action[1:], state["Parameters"])
    return tasks
