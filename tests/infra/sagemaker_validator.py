"""Check a SageMaker request against botocore's service model, stricter than botocore itself.

botocore's `validate_parameters` checks required members, types and minimum lengths, but not
patterns, maxima or enums; SageMaker enforces those server-side, so a bad name or enum would only
fail at deploy time. This validator checks all of them, and it understands Step Functions task
parameters: a key ending in `.$` holds a JSONPath or an intrinsic function, which is evaluated
against a sample execution input and context object when it can be, and skipped with a note when
it cannot.

Entry points: `validate(operation, params, execution_input=...) -> list[str]` (the problems),
`check(...) -> Report` (problems and notes), and `check_state_machine(definition, ...)`, which
checks every SageMaker task of a state-machine definition (optimised and aws-sdk integrations).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import Shape

#: A context object like the one Step Functions passes; `$$.Execution.Name` is a UUID by default.
SAMPLE_CONTEXT: dict[str, Any] = {
    "Execution": {
        "Id": "arn:aws:states:us-east-1:123456789012:execution:imgclf-pipeline:0f6a1c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "Name": "0f6a1c2e-5b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "RoleArn": "arn:aws:iam::123456789012:role/imgclf-states",
        "StartTime": "2026-01-01T00:00:00.000Z",
        "RedriveCount": 0,
    },
    "State": {"Name": "Task", "EnteredTime": "2026-01-01T00:00:01.000Z", "RetryCount": 0},
    "StateMachine": {
        "Id": "arn:aws:states:us-east-1:123456789012:stateMachine:imgclf-pipeline",
        "Name": "imgclf-pipeline",
    },
    "Task": {"Token": "sample-task-token"},
}


class Unresolved:
    """A dynamic value the evaluator could not compute; its member is present but unchecked."""

    def __init__(self, expression: str, reason: str) -> None:
        self.expression, self.reason = expression, reason


class _EvalError(Exception):
    pass


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@lru_cache(maxsize=1)
def _service_model():
    return botocore.session.get_session().get_service_model("sagemaker")


def operation_names() -> list[str]:
    return list(_service_model().operation_names)


def check(
    operation_name: str,
    params: dict[str, Any],
    *,
    execution_input: Any = None,
    context: dict[str, Any] | None = None,
) -> Report:
    """Validate `params` (a request dict or a Step Functions task's Parameters) for `operation_name`."""
    report = Report()
    model = _service_model()
    if operation_name not in model.operation_names:
        report.problems.append(f"unknown SageMaker operation {operation_name!r}")
        return report
    env = {"input": {} if execution_input is None else execution_input, "context": context or SAMPLE_CONTEXT}
    resolved = _resolve_dynamic(params, env, "", report)
    _check_shape(model.operation_model(operation_name).input_shape, resolved, operation_name, report)
    return report


def validate(
    operation_name: str,
    params: dict[str, Any],
    *,
    execution_input: Any = None,
    context: dict[str, Any] | None = None,
) -> list[str]:
    """The problems `check` finds; empty when the request is valid."""
    return check(operation_name, params, execution_input=execution_input, context=context).problems


_SAGEMAKER_RESOURCE = re.compile(r"arn:aws[a-z-]*:states:::(?:aws-sdk:)?sagemaker:(\w+?)(?:\.sync|\.waitForTaskToken)?")


def operation_for_resource(resource: str) -> str | None:
    """`arn:aws:states:::sagemaker:createTrainingJob.sync` -> `CreateTrainingJob`; None if not SageMaker."""
    match = _SAGEMAKER_RESOURCE.fullmatch(resource) if isinstance(resource, str) else None
    return match.group(1)[0].upper() + match.group(1)[1:] if match else None


def _states(definition: dict) -> dict[str, dict]:
    """Every state, including those inside Parallel branches and Map processors."""
    found: dict[str, dict] = {}
    for name, state in definition.get("States", {}).items():
        found[name] = state
        for branch in state.get("Branches", []):
            found.update(_states(branch))
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                found.update(_states(state[key]))
    return found


def check_state_machine(
    definition: dict | str,
    *,
    execution_input: Any = None,
    state_inputs: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> dict[str, Report]:
    """Check each SageMaker task's Parameters. A state's `$` is `state_inputs[name]` when given,
    else the execution input. Returns {state name: Report} for the SageMaker tasks only."""
    if isinstance(definition, str):
        definition = json.loads(definition)
    reports: dict[str, Report] = {}
    for name, state in _states(definition).items():
        operation = operation_for_resource(state.get("Resource", "")) if state.get("Type") == "Task" else None
        if operation is None:
            continue
        sample = (state_inputs or {}).get(name, execution_input)
        if "Arguments" in state:
            report = Report(notes=[f"{name}: JSONata Arguments are not evaluated"])
        else:
            report = check(operation, state.get("Parameters", {}), execution_input=sample, context=context)
        reports[name] = report
    return reports


# ---------------------------------------------------------------------------------------------
# Dynamic values: `.$` keys (JSONPath and intrinsic functions)


def _resolve_dynamic(value: Any, env: dict, path: str, report: Report) -> Any:
    if isinstance(value, list):
        return [_resolve_dynamic(v, env, f"{path}[{i}]", report) for i, v in enumerate(value)]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if isinstance(key, str) and key.endswith(".$"):
            name = key[:-2]
            where = f"{path}.{name}" if path else name
            if name in value:
                report.problems.append(f"{where}: given both as {name!r} and as {key!r}")
            out[name] = _evaluate_dynamic(item, env, where, report)
        else:
            out[key] = _resolve_dynamic(item, env, f"{path}.{key}" if path else str(key), report)
    return out


def _evaluate_dynamic(expression: Any, env: dict, where: str, report: Report) -> Any:
    if not isinstance(expression, str):
        report.problems.append(f"{where}: a '.$' key needs a JSONPath or intrinsic string, got {expression!r}")
        return Unresolved(repr(expression), "not a string")
    try:
        return evaluate(expression, env["input"], env["context"])
    except _EvalError as err:
        report.notes.append(f"{where}: dynamic value {expression!r} not checked ({err})")
        return Unresolved(expression, str(err))


def evaluate(expression: str, execution_input: Any, context: dict[str, Any] | None = None) -> Any:
    """Evaluate a Step Functions path or intrinsic function; raise _EvalError when it cannot."""
    parser = _Parser(expression.strip(), execution_input, context or SAMPLE_CONTEXT)
    value = parser.expression()
    parser.skip_space()
    if parser.pos != len(parser.text):
        raise _EvalError(f"unexpected text at {parser.text[parser.pos:]!r}")
    return value


_PATH = re.compile(r"\$\$?(?:\.[A-Za-z_][\w-]*|\[\d+\])*")


class _Parser:
    """A small recursive-descent evaluator for the intrinsics the pipeline uses."""

    def __init__(self, text: str, execution_input: Any, context: dict) -> None:
        self.text, self.pos, self.input, self.context = text, 0, execution_input, context

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def expression(self) -> Any:
        self.skip_space()
        rest = self.text[self.pos :]
        if rest.startswith("{%"):
            raise _EvalError("JSONata expressions are not evaluated")
        if rest.startswith("$"):
            match = _PATH.match(rest)
            self.pos += match.end()
            return self._lookup(match.group(0))
        if rest.startswith("'"):
            return self._string()
        number = re.match(r"-?\d+(\.\d+)?", rest)
        if number:
            self.pos += number.end()
            return float(number.group(0)) if number.group(1) else int(number.group(0))
        for word, value in (("true", True), ("false", False), ("null", None)):
            if rest.startswith(word):
                self.pos += len(word)
                return value
        call = re.match(r"States\.(\w+)\(", rest)
        if call:
            self.pos += call.end()
            args = self._arguments()
            return _intrinsic(call.group(1), args)
        raise _EvalError(f"cannot parse {rest!r}")

    def _arguments(self) -> list[Any]:
        args: list[Any] = []
        self.skip_space()
        if self.text.startswith(")", self.pos):
            self.pos += 1
            return args
        while True:
            args.append(self.expression())
            self.skip_space()
            if self.pos >= len(self.text):
                raise _EvalError("unclosed intrinsic call")
            char = self.text[self.pos]
            self.pos += 1
            if char == ")":
                return args
            if char != ",":
                raise _EvalError(f"expected ',' or ')' at {self.text[self.pos - 1:]!r}")

    def _string(self) -> str:
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                # Keep \{ \} escaped so that States.Format can tell them from placeholders.
                nxt = self.text[self.pos + 1]
                chars.append("\\" + nxt if nxt in "{}" else nxt)
                self.pos += 2
                continue
            self.pos += 1
            if char == "'":
                return "".join(chars)
            chars.append(char)
        raise _EvalError("unterminated string literal")

    def _lookup(self, path: str) -> Any:
        value: Any = self.context if path.startswith("$$") else self.input
        steps = re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]", path[2:] if path.startswith("$$") else path[1:])
        for name, index in steps:
            try:
                value = value[int(index)] if index else value[name]
            except (KeyError, IndexError, TypeError):
                where = "context object" if path.startswith("$$") else "sample execution input"
                raise _EvalError(f"{path} is not in the {where}") from None
        return value


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (int, float, str)):
        return str(value)
    raise _EvalError(f"States.Format takes strings, numbers, booleans or null, got {value!r}")


def _intrinsic(name: str, args: list[Any]) -> Any:
    if name == "Format":
        template, values = args[0], list(args[1:])
        pieces = re.split(r"(\\\{|\\\}|\{\})", template)
        out = []
        for piece in pieces:
            if piece == "{}":
                if not values:
                    raise _EvalError("States.Format has more placeholders than arguments")
                out.append(_text(values.pop(0)))
            else:
                out.append(piece.replace("\\{", "{").replace("\\}", "}"))
        if values:
            raise _EvalError("States.Format has more arguments than placeholders")
        return "".join(out)
    if name == "StringSplit":
        text, delimiters = args
        # Every character of the delimiter string splits; empty pieces are dropped.
        return [p for p in re.split("[" + re.escape(delimiters) + "]", text) if p]
    if name == "ArrayGetItem":
        array, index = args
        try:
            return array[index]
        except (IndexError, TypeError):
            raise _EvalError(f"States.ArrayGetItem index {index!r} out of range") from None
    if name == "Array":
        return list(args)
    if name == "JsonMerge":
        left, right, deep = args
        if deep:
            raise _EvalError("States.JsonMerge supports only shallow merges (third argument false)")
        if not isinstance(left, dict) or not isinstance(right, dict):
            raise _EvalError("States.JsonMerge merges two objects")
        return {**left, **right}
    if name == "StringToJson":
        return json.loads(args[0])
    if name == "JsonToString":
        return json.dumps(args[0], separators=(",", ":"))
    if name == "MathAdd":
        return args[0] + args[1]
    if name == "UUID":
        return str(uuid.UUID(int=0))
    raise _EvalError(f"intrinsic States.{name} is not evaluated here")


# ---------------------------------------------------------------------------------------------
# Shape checks


@lru_cache(maxsize=None)
def _compiled(pattern: str) -> Any:
    """The model's patterns are Java regexes; a few use `\\p{L}`-style classes that only the
    `regex` package (a cfn-lint dependency) understands. None: not checkable here."""
    try:
        return re.compile(pattern)
    except re.error:
        pass
    try:
        import regex
    except ImportError:
        return None
    try:
        return regex.compile(pattern)
    except regex.error:
        return None


def _check_shape(shape: Shape, value: Any, where: str, report: Report) -> None:
    if isinstance(value, Unresolved):
        return
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    if checker is None:
        report.notes.append(f"{where}: shape type {kind!r} not checked")
        return
    checker(shape, value, where, report)


def _limits(shape: Shape, size: float, what: str, where: str, report: Report) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        report.problems.append(f"{where}: {what} {size} is below the minimum {low}")
    if high is not None and size > high:
        report.problems.append(f"{where}: {what} {size} is above the maximum {high}")


def _structure(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, dict):
        report.problems.append(f"{where}: expected an object ({shape.name}), got {type(value).__name__}")
        return
    for name in shape.required_members:
        if name not in value:
            report.problems.append(f"{where}: missing required member {name!r}")
    for name, item in value.items():
        member = shape.members.get(name)
        if member is None:
            report.problems.append(f"{where}: unknown member {name!r} (allowed: {', '.join(shape.members)})")
            continue
        _check_shape(member, item, f"{where}.{name}", report)


def _list(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, list):
        report.problems.append(f"{where}: expected a list, got {type(value).__name__}")
        return
    _limits(shape, len(value), "length", where, report)
    for i, item in enumerate(value):
        _check_shape(shape.member, item, f"{where}[{i}]", report)


def _map(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, dict):
        report.problems.append(f"{where}: expected a map, got {type(value).__name__}")
        return
    _limits(shape, len(value), "number of entries", where, report)
    for key, item in value.items():
        _check_shape(shape.key, key, f"{where} key {key!r}", report)
        _check_shape(shape.value, item, f"{where}[{key!r}]", report)


def _string(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, str):
        report.problems.append(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return
    enum = shape.enum
    if enum and value not in enum:
        shown = ", ".join(enum[:12]) + (", ..." if len(enum) > 12 else "")
        report.problems.append(f"{where}: {value!r} is not one of the allowed values ({shown})")
    _limits(shape, len(value), "length", where, report)
    pattern = shape.metadata.get("pattern")
    if pattern:
        compiled = _compiled(pattern)
        if compiled is None:
            report.notes.append(f"{where}: pattern {pattern!r} is not a Python regex; not checked")
        elif not compiled.fullmatch(value):
            report.problems.append(f"{where}: {value!r} does not match the pattern '{pattern}'")


def _integer(shape: Shape, value: Any, where: str, report: Report) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        report.problems.append(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return
    _limits(shape, value, "value", where, report)


def _number(shape: Shape, value: Any, where: str, report: Report) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        report.problems.append(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return
    _limits(shape, value, "value", where, report)


def _boolean(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, bool):
        report.problems.append(f"{where}: expected a boolean, got {type(value).__name__} {value!r}")


def _timestamp(shape: Shape, value: Any, where: str, report: Report) -> None:
    if isinstance(value, bool) or not isinstance(value, (str, int, float, _dt.datetime)):
        report.problems.append(f"{where}: expected a timestamp, got {type(value).__name__}")


def _blob(shape: Shape, value: Any, where: str, report: Report) -> None:
    if not isinstance(value, (bytes, bytearray, str)):
        report.problems.append(f"{where}: expected bytes, got {type(value).__name__}")


_CHECKERS = {
    "structure": _structure,
    "list": _list,
    "map": _map,
    "string": _string,
    "integer": _integer,
    "long": _integer,
    "float": _number,
    "double": _number,
    "boolean": _boolean,
    "timestamp": _timestamp,
    "blob": _blob,
}
