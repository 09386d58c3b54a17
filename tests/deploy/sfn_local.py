"""Runs (or checks) the Step Functions state machine of a CloudFormation template locally, its Batch jobs through the real binary."""
# Usage:
#   sfn_local.py TEMPLATE [--param KEY=VALUE ...] --binary PATH [--input JSON]
#                [--time-scale 0] [--summary FILE] [--sns-log FILE]
#   sfn_local.py TEMPLATE [--param KEY=VALUE ...] --check [--summary FILE]
#   sfn_local.py TEMPLATE [--param KEY=VALUE ...] --dump-definition FILE
#
# The template is read the way CloudFormation reads it: stack parameters (`--param`, else
# their defaults, checked against AllowedValues/AllowedPattern), pseudo parameters,
# Conditions, and the short tags (!Ref !Sub !GetAtt !If !Equals !Not !And !Or !Join !Select
# !Split !FindInMap ...). Resources get plausible ARNs. The state machine's Definition gets
# its DefinitionSubstitutions (`--definition FILE` runs another definition against the same
# template: it may also name any resource as ${LogicalId}).
#
# States: Task (arn:aws:states:::batch:submitJob.sync, arn:aws:states:::sns:publish), Choice,
# Pass, Wait, Succeed, Fail, Map (inline ItemProcessor/Iterator over ItemsPath, or ItemReader
# arn:aws:states:::s3:getObject with a JSON array, MaxConcurrency threads); Retry, Catch,
# InputPath/Parameters/ResultSelector/ResultPath/OutputPath with `.$` JSONPath references,
# the context object ($$.Execution.Id, $$.StateMachine.Id, $$.State.Name, $$.Map.Item.*) and
# the intrinsics States.Format/StringToJson/JsonToString/Array/ArrayGetItem/ArrayLength/
# MathAdd/StringSplit/UUID.
#
# A Batch task runs its job definition's ContainerProperties.Command (or ContainerOverrides
# .Command, which may only append arguments to it) with each `Ref::name` argument replaced by
# the task's Parameters.Parameters, then the job definition's default Parameters; the
# environment is this process's, then the job definition's Environment, then the overrides'.
# A non-zero exit is States.TaskFailed whose Cause is the job's description as Step Functions
# gives it (JSON: Status FAILED, Container.ExitCode, ...; stderr only in the summary).
# Task resources also: arn:aws:states:::aws-sdk:s3:listObjectsV2 and :deleteObject. A
# DISTRIBUTED Map runs each item as a child execution ($$.Execution is the child's, no
# $$.Map; ItemSelector sees $$.Map.Item) and fails as a whole with
# States.ExceedToleratedFailureThreshold. With several state machines, --check validates all
# of them; a run or --dump-definition needs --state-machine. --before-state NAME=CMD runs a
# shell command once before state NAME is first entered (tests: a concurrent commit). What AWS would refuse
# or silently get wrong is a definition error that stops everything (exit 2): an unknown job
# definition, queue or topic, a Ref:: placeholder without a value, a task parameter the job
# definition does not declare (Batch would ignore it), an override that changes the command,
# a ${...} without a substitution, an unsupported state or resource.
#
# --check validates all of that statically (every Task, inside Maps too, and every job
# definition) without running anything. Exit codes: 0 succeeded (or the check passed), 1 the
# execution failed, 2 a definition or usage error. --summary writes a JSON document: status,
# error, cause, output, the states visited with each task attempt's argv, exit code, stdout
# and stderr tail, retries and catches, the SNS messages; with --check, the job definitions'
# and tasks' commands and the errors found.

import argparse
import copy
import datetime
import fnmatch
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import yaml

BATCH_SYNC = "arn:aws:states:::batch:submitJob.sync"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
S3_GET_OBJECT = "arn:aws:states:::s3:getObject"
AWS_SDK_S3 = "arn:aws:states:::aws-sdk:s3:"
# The AWS SDK integrations with S3 this executor runs (request fields each requires).
SDK_S3_ACTIONS = {"listObjectsV2": ("Bucket",), "deleteObject": ("Bucket", "Key")}
STDERR_TAIL = 4000
STDOUT_CAP = 1 << 20


class DefinitionError(Exception):
    """Something AWS would refuse, or run wrongly without a word: stops the run (exit 2)."""


class StatesError(Exception):
    """A runtime error of the state machine (Error, Cause): retried and caught like in AWS."""

    def __init__(self, error, cause=""):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class RuntimeFault(StatesError):
    """States.Runtime: a bad path or intrinsic at run time; never retried nor caught."""

    def __init__(self, cause):
        super().__init__("States.Runtime", cause)


# ------------------------------------------------------------------------------------------
# CloudFormation YAML: the short tags become the long form ({"Fn::Sub": ...}).

class CfnLoader(yaml.SafeLoader):
    """PyYAML's safe loader plus CloudFormation's short-form intrinsic tags."""


def _add_tag(tag, name):
    def construct(loader, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if name == "Fn::GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {name: value}

    CfnLoader.add_constructor("!" + tag, construct)


for _tag in ["Ref", "Condition"]:
    _add_tag(_tag, _tag)
for _tag in ["Sub", "GetAtt", "If", "Equals", "Not", "And", "Or", "Join", "Select", "Split",
             "FindInMap", "Base64", "GetAZs", "ImportValue", "Cidr", "ToJsonString", "Length"]:
    _add_tag(_tag, "Fn::" + _tag)


def load_yaml(path):
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)


# ------------------------------------------------------------------------------------------
# The stack: parameters, conditions, resources and the intrinsic functions over them.

NO_VALUE = object()  # AWS::NoValue: the key or list item disappears

# The property that names a resource of each type (else a generated name).
NAME_PROPERTY = {
    "AWS::Batch::JobDefinition": "JobDefinitionName",
    "AWS::Batch::JobQueue": "JobQueueName",
    "AWS::Batch::ComputeEnvironment": "ComputeEnvironmentName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::Scheduler::Schedule": "Name",
}


class Stack:
    """A template with its parameter values: evaluates intrinsics as CloudFormation would."""

    def __init__(self, template, given, stack_name, region, account):
        self.template = template
        self.resources = template.get("Resources") or {}
        self.pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack_name,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/local",
            "AWS::NotificationARNs": [],
        }
        self.params = self._parameters(given)
        self._conditions = {}
        self._naming = set()

    def _parameters(self, given):
        declared = self.template.get("Parameters") or {}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            raise DefinitionError(f"--param for undeclared stack parameters: {', '.join(unknown)}")
        values, missing = {}, []
        for name, spec in declared.items():
            if name in given:
                raw = given[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                missing.append(name)
                continue
            raw = "" if raw is None else raw
            typ = spec.get("Type", "String")
            if typ.startswith("List<") or typ == "CommaDelimitedList":
                items = raw if isinstance(raw, list) else [s.strip() for s in str(raw).split(",")]
                items = [str(i) for i in items if str(i) != ""]
                if typ.startswith("List<") and not items:
                    raise DefinitionError(f"stack parameter {name} ({typ}) is empty")
                values[name] = items
                continue
            text = str(raw).lower() if isinstance(raw, bool) else str(raw)
            self._check_value(name, spec, text)
            values[name] = text
        if missing:
            raise DefinitionError(f"stack parameters without a value or default: {', '.join(missing)}")
        return values

    @staticmethod
    def _check_value(name, spec, text):
        allowed = spec.get("AllowedValues")
        if allowed is not None and text not in [str(a) for a in allowed]:
            raise DefinitionError(f"stack parameter {name}={text!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, text):
            raise DefinitionError(f"stack parameter {name}={text!r} does not match {pattern}")
        if spec.get("Type") == "Number":
            try:
                number = float(text)
            except ValueError:
                raise DefinitionError(f"stack parameter {name}={text!r} is not a number") from None
            if "MinValue" in spec and number < float(spec["MinValue"]):
                raise DefinitionError(f"stack parameter {name}={text} is below {spec['MinValue']}")
            if "MaxValue" in spec and number > float(spec["MaxValue"]):
                raise DefinitionError(f"stack parameter {name}={text} is above {spec['MaxValue']}")
        if "MinLength" in spec and len(text) < int(spec["MinLength"]):
            raise DefinitionError(f"stack parameter {name} is shorter than {spec['MinLength']}")
        if "MaxLength" in spec and len(text) > int(spec["MaxLength"]):
            raise DefinitionError(f"stack parameter {name} is longer than {spec['MaxLength']}")

    # -- conditions and resources

    def condition(self, name):
        if name not in self._conditions:
            conditions = self.template.get("Conditions") or {}
            if name not in conditions:
                raise DefinitionError(f"unknown condition {name}")
            self._conditions[name] = bool(self.evaluate(conditions[name], in_condition=True))
        return self._conditions[name]

    def exists(self, logical):
        res = self.resources.get(logical)
        if res is None:
            return False
        cond = res.get("Condition")
        return cond is None or self.condition(cond)

    def of_type(self, typ):
        """Logical ids of the created resources of a type."""
        return [k for k, r in self.resources.items() if r.get("Type") == typ and self.exists(k)]

    def properties(self, logical):
        return self.evaluate(self.resources[logical].get("Properties") or {})

    def physical_name(self, logical):
        res = self.resources[logical]
        prop = NAME_PROPERTY.get(res.get("Type"))
        props = res.get("Properties") or {}
        if prop and prop in props:
            if logical in self._naming:
                raise DefinitionError(f"the name of {logical} refers to itself")
            self._naming.add(logical)
            try:
                return str(self.evaluate(props[prop]))
            finally:
                self._naming.discard(logical)
        return f"{self.pseudo['AWS::StackName']}-{logical}"

    def arn(self, service, rest):
        """An ARN of this stack's region and account."""
        reg = self.pseudo["AWS::Region"]
        return f"arn:aws:{service}:{reg}:{self.pseudo['AWS::AccountId']}:{rest}"

    def ref_resource(self, logical):
        """What !Ref gives for a resource (ARN or name, as its type documents)."""
        self._require(logical)
        typ = self.resources[logical].get("Type")
        name = self.physical_name(logical)
        return {
            "AWS::Batch::JobDefinition": lambda: self.arn("batch", f"job-definition/{name}:1"),
            "AWS::Batch::JobQueue": lambda: self.arn("batch", f"job-queue/{name}"),
            "AWS::Batch::ComputeEnvironment": lambda: self.arn("batch", f"compute-environment/{name}"),
            "AWS::SNS::Topic": lambda: self.arn("sns", name),
            "AWS::StepFunctions::StateMachine": lambda: self.arn("states", f"stateMachine:{name}"),
        }.get(typ, lambda: name)()

    def get_att(self, logical, attr):
        self._require(logical)
        typ = self.resources[logical].get("Type")
        name = self.physical_name(logical)
        if attr == "Arn":
            arns = {
                "AWS::IAM::Role": lambda: f"arn:aws:iam::{self.pseudo['AWS::AccountId']}:role/{name}",
                "AWS::IAM::InstanceProfile":
                    lambda: f"arn:aws:iam::{self.pseudo['AWS::AccountId']}:instance-profile/{name}",
                "AWS::Logs::LogGroup": lambda: self.arn("logs", f"log-group:{name}:*"),
                "AWS::Scheduler::Schedule": lambda: self.arn("scheduler", f"schedule/default/{name}"),
            }
            if typ in arns:
                return arns[typ]()
            ref = self.ref_resource(logical)
            return ref if ref.startswith("arn:") else self.arn("local", f"{logical}/{ref}")
        if attr in ("Name", "TopicName", "StateMachineName"):
            return name
        return f"{logical}.{attr}"

    def _require(self, logical):
        if logical not in self.resources:
            raise DefinitionError(f"reference to unknown resource {logical}")
        if not self.exists(logical):
            raise DefinitionError(
                f"reference to {logical}, which is not created (condition "
                f"{self.resources[logical]['Condition']} is false)")

    def ref(self, name):
        if name in self.params:
            return self.params[name]
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        return self.ref_resource(name)

    # -- intrinsic functions

    def evaluate(self, value, in_condition=False):
        """The value with every intrinsic function evaluated (NO_VALUE items removed)."""
        if isinstance(value, list):
            out = [self.evaluate(v, in_condition) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" or key.startswith("Fn::") or (key == "Condition" and in_condition):
                return self._function(key, arg, in_condition)
        out = {}
        for k, v in value.items():
            v = self.evaluate(v, in_condition)
            if v is not NO_VALUE:
                out[k] = v
        return out

    def _function(self, fn, arg, in_condition):
        ev = lambda v: self.evaluate(v, in_condition)  # noqa: E731
        if fn == "Ref":
            return self.ref(ev(arg))
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Sub":
            return self._sub(arg)
        if fn == "Fn::GetAtt":
            logical, attr = ev(arg) if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical, attr)
        if fn == "Fn::If":
            cond, yes, no = arg
            return ev(yes) if self.condition(cond) else ev(no)
        if fn == "Fn::Equals":
            a, b = (ev(x) for x in arg)
            return str(a) == str(b) if not isinstance(a, list) else a == b
        if fn == "Fn::Not":
            return not ev(arg[0])
        if fn == "Fn::And":
            return all(ev(x) for x in arg)
        if fn == "Fn::Or":
            return any(ev(x) for x in arg)
        if fn == "Fn::Join":
            sep, items = arg[0], ev(arg[1])
            return sep.join(str(i) for i in items)
        if fn == "Fn::Select":
            index, items = int(ev(arg[0])), ev(arg[1])
            if not 0 <= index < len(items):
                raise DefinitionError(f"Fn::Select index {index} out of {items}")
            return items[index]
        if fn == "Fn::Split":
            return str(ev(arg[1])).split(arg[0])
        if fn == "Fn::FindInMap":
            name, top, second = (ev(x) for x in arg[:3])
            try:
                return self.template["Mappings"][name][top][second]
            except KeyError:
                raise DefinitionError(f"Fn::FindInMap {name}/{top}/{second} not found") from None
        if fn == "Fn::Base64":
            import base64
            return base64.b64encode(str(ev(arg)).encode()).decode()
        if fn == "Fn::GetAZs":
            region = ev(arg) or self.pseudo["AWS::Region"]
            return [region + z for z in "abc"]
        if fn == "Fn::ToJsonString":
            return json.dumps(ev(arg), separators=(",", ":"))
        if fn == "Fn::Length":
            return len(ev(arg))
        raise DefinitionError(f"{fn} is not supported by this executor")

    def _sub(self, arg):
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.evaluate(v) for k, v in arg[1].items()}
        else:
            text, variables = arg, {}

        def one(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            if isinstance(value, list) or value is NO_VALUE:
                raise DefinitionError(f"Fn::Sub ${{{name}}} is not a string")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", one, text)


# ------------------------------------------------------------------------------------------
# The model the executor runs against: job definitions, queues, topics, the definition.

class JobDefinition:
    """A Batch job definition of the template: its command, defaults and environment."""

    def __init__(self, logical, arn, name, props):
        self.logical = logical
        self.arn = arn
        self.name = name
        container = props.get("ContainerProperties") or {}
        self.command = [str(a) for a in container.get("Command") or []]
        self.defaults = {k: v for k, v in (props.get("Parameters") or {}).items()}
        self.environment = {e["Name"]: str(e["Value"]) for e in container.get("Environment") or []}
        log = container.get("LogConfiguration") or {}
        self.stream_prefix = (log.get("Options") or {}).get("awslogs-stream-prefix")
        self.placeholders = [m.group(1) for a in self.command
                             for m in [re.fullmatch(r"Ref::([A-Za-z0-9_-]+)", a)] if m]

    def declares(self, name):
        return name in self.placeholders or name in self.defaults

    def problems(self):
        """What is wrong with the job definition itself."""
        out = []
        if not self.command:
            out.append(f"job definition {self.logical} has no ContainerProperties.Command")
        for a in self.command:
            if "Ref::" in a and not re.fullmatch(r"Ref::[A-Za-z0-9_-]+", a):
                out.append(f"job definition {self.logical}: {a!r} - Batch replaces whole "
                           "Ref::name arguments only")
        for k, v in self.defaults.items():
            if not isinstance(v, str):
                out.append(f"job definition {self.logical}: default of parameter {k} is not a string")
            if k not in self.placeholders:
                out.append(f"job definition {self.logical}: parameter {k} has a default but its "
                           "command has no Ref::" + k)
        return out


class Model:
    """The template's Batch, SNS and Step Functions resources, and the definition to run."""

    def __init__(self, stack, machine=None, definition_file=None):
        self.stack = stack
        self.machines = stack.of_type("AWS::StepFunctions::StateMachine")
        self.job_definitions = []
        for logical in stack.of_type("AWS::Batch::JobDefinition"):
            props = stack.properties(logical)
            self.job_definitions.append(JobDefinition(
                logical, stack.ref_resource(logical), stack.physical_name(logical), props))
        self.queues = {stack.ref_resource(q): stack.physical_name(q)
                       for q in stack.of_type("AWS::Batch::JobQueue")}
        self.topics = {stack.ref_resource(t) for t in stack.of_type("AWS::SNS::Topic")}
        machines = self.machines
        if machine is None:
            if len(machines) != 1:
                raise DefinitionError(
                    f"the template has state machines {machines}: pick one with --state-machine")
            machine = machines[0]
        elif machine not in machines:
            raise DefinitionError(f"no state machine {machine} in the template (have {machines})")
        self.machine = machine
        self.machine_arn = stack.ref_resource(machine)
        self.machine_name = stack.physical_name(machine)
        raw = stack.resources[machine].get("Properties") or {}
        self.substitutions = {k: stack.evaluate(v)
                              for k, v in (raw.get("DefinitionSubstitutions") or {}).items()}
        for k, v in self.substitutions.items():
            if isinstance(v, (dict, list)):
                raise DefinitionError(f"DefinitionSubstitutions {k} is not a scalar")
            self.substitutions[k] = v if isinstance(v, str) else json.dumps(v)
        if definition_file:
            # A definition of one's own against the template: any resource by ${LogicalId}.
            text_or_obj = load_yaml(definition_file)
            for logical in stack.resources:
                if stack.exists(logical) and logical not in self.substitutions:
                    self.substitutions[logical] = stack.ref_resource(logical)
        elif "Definition" in raw:
            text_or_obj = stack.evaluate(raw["Definition"])
        elif "DefinitionString" in raw:
            text_or_obj = json.loads(stack.evaluate(raw["DefinitionString"]))
        else:
            raise DefinitionError(f"{machine}: only an inline Definition or DefinitionString is supported")
        self.unresolved = set()
        self.definition = self._substitute(text_or_obj)

    def _substitute(self, value):
        if isinstance(value, dict):
            return {k: self._substitute(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._substitute(v) for v in value]
        if isinstance(value, str):
            def one(m):
                if m.group(1) in self.substitutions:
                    return self.substitutions[m.group(1)]
                self.unresolved.add(m.group(1))
                return m.group(0)
            return re.sub(r"\$\{([^}]+)\}", one, value)
        return value

    def job_definition(self, ref):
        """The job definition an ARN (with or without revision) or a name[:revision] means."""
        for jd in self.job_definitions:
            bare = jd.arn.rsplit(":", 1)[0]
            if ref in (jd.arn, bare, jd.name, jd.name + ":1"):
                return jd
        known = ", ".join(jd.name for jd in self.job_definitions)
        raise DefinitionError(f"unknown job definition {ref!r} (the template has: {known})")

    def queue(self, ref):
        for arn, name in self.queues.items():
            if ref in (arn, name):
                return arn
        known = ", ".join(self.queues.values())
        raise DefinitionError(f"unknown job queue {ref!r} (the template has: {known})")


def batch_argv(jd, task_params, override_command, where):
    """The container command of a Batch task with its Ref:: arguments filled in."""
    if not isinstance(task_params, dict):
        raise DefinitionError(f"{where}: Parameters.Parameters must be an object")
    for k, v in task_params.items():
        if not jd.declares(k):
            raise DefinitionError(
                f"{where}: parameter {k!r} is not declared by job definition {jd.name} "
                f"(its command takes: {', '.join(jd.placeholders) or 'none'})")
        if not isinstance(v, str):
            raise DefinitionError(f"{where}: Batch parameter {k} must be a string, not {v!r}")
    command = jd.command
    if override_command is not None:
        check_override(jd, override_command, where)
        command = [str(a) for a in override_command]
    argv = []
    for a in command:
        m = re.fullmatch(r"Ref::([A-Za-z0-9_-]+)", a)
        if m:
            name = m.group(1)
            value = task_params.get(name, jd.defaults.get(name))
            if value is None:
                raise DefinitionError(
                    f"{where}: Ref::{name} of job definition {jd.name} has no value (the task "
                    "passes none and the job definition has no default)")
            argv.append(value)
        elif "Ref::" in a:
            raise DefinitionError(f"{where}: {a!r} - Batch replaces whole Ref::name arguments only")
        else:
            argv.append(a)
    return argv


def check_override(jd, command, where):
    """An override may only append arguments to the job definition's command."""
    if not isinstance(command, list) or [str(a) for a in command[:len(jd.command)]] != jd.command:
        raise DefinitionError(
            f"{where}: ContainerOverrides.Command must be job definition {jd.name}'s command "
            f"with arguments appended\n  job definition: {jd.command}\n  override:       {command}")


# ------------------------------------------------------------------------------------------
# JSONPath (the subset ASL needs), payload templates and intrinsic functions.

_PATH_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]")


def parse_path(path):
    """('$' or '$$', [keys]) of a reference path such as $.a.b[0] or $$.Execution.Id."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise RuntimeFault(f"{path!r} is not a JSONPath")
    root, rest = ("$$", path[2:]) if path.startswith("$$") else ("$", path[1:])
    keys, pos = [], 0
    while pos < len(rest):
        m = _PATH_STEP.match(rest, pos)
        if not m:
            raise RuntimeFault(f"unsupported JSONPath {path!r}")
        keys.append(int(m.group(2)) if m.group(2) is not None
                    else next(g for g in (m.group(1), m.group(3), m.group(4)) if g is not None))
        pos = m.end()
    return root, keys


def get_path(data, ctx, path):
    root, keys = parse_path(path)
    value = ctx if root == "$$" else data
    for k in keys:
        if isinstance(k, int) and isinstance(value, list) and k < len(value):
            value = value[k]
        elif isinstance(k, str) and isinstance(value, dict) and k in value:
            value = value[k]
        else:
            raise RuntimeFault(f"the JSONPath {path} could not be found in the input")
    return value


def has_path(data, ctx, path):
    try:
        get_path(data, ctx, path)
        return True
    except RuntimeFault:
        return False


def set_path(data, path, value):
    """A copy of data with value at path (ResultPath), creating objects on the way."""
    root, keys = parse_path(path)
    if root != "$":
        raise RuntimeFault(f"ResultPath {path} must start with $")
    if not keys:
        return value
    out = copy.deepcopy(data) if isinstance(data, (dict, list)) else {}
    node = out
    for k in keys[:-1]:
        if isinstance(node, dict):
            if not isinstance(node.get(k), (dict, list)):
                node[k] = {}
            node = node[k]
        elif isinstance(node, list) and isinstance(k, int) and k < len(node):
            node = node[k]
        else:
            raise RuntimeFault(f"ResultPath {path} does not fit the input")
    if isinstance(node, dict):
        node[keys[-1]] = value
    elif isinstance(node, list) and isinstance(keys[-1], int) and keys[-1] < len(node):
        node[keys[-1]] = value
    else:
        raise RuntimeFault(f"ResultPath {path} does not fit the input")
    return out


def select_path(data, ctx, state, field):
    """InputPath / OutputPath: absent = $, null = {}."""
    if field not in state:
        return data
    if state[field] is None:
        return {}
    return get_path(data, ctx, state[field])


def payload(template, data, ctx):
    """A Parameters / ResultSelector / ItemSelector template applied to data."""
    if isinstance(template, dict):
        out = {}
        for k, v in template.items():
            if k.endswith(".$"):
                if not isinstance(v, str):
                    raise RuntimeFault(f"{k} must be a path or an intrinsic")
                out[k[:-2]] = (intrinsic(v, data, ctx) if v.startswith("States.")
                               else copy.deepcopy(get_path(data, ctx, v)))
            else:
                out[k] = payload(v, data, ctx)
        return out
    if isinstance(template, list):
        return [payload(v, data, ctx) for v in template]
    return template


class _Lit:
    """A string literal of an intrinsic call, kept as written (States.Format needs the escapes)."""

    def __init__(self, raw):
        self.raw = raw

    @property
    def value(self):
        return re.sub(r"\\(.)", r"\1", self.raw)


def _parse_intrinsic(text, pos=0):
    """(name, [args], end) of States.X(...) at text[pos:]; args are _Lit, paths, calls, JSON scalars."""
    m = re.compile(r"\s*(States\.[A-Za-z0-9]+)\(").match(text, pos)
    if not m:
        raise RuntimeFault(f"bad intrinsic function {text!r}")
    name, pos, args = m.group(1), m.end(), []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            raise RuntimeFault(f"unterminated intrinsic function {text!r}")
        c = text[pos]
        if c == ")" and not args:
            return name, args, pos + 1
        if c == "'":
            end = pos + 1
            while end < len(text) and text[end] != "'":
                end += 2 if text[end] == "\\" else 1
            if end >= len(text):
                raise RuntimeFault(f"unterminated string in {text!r}")
            args.append(_Lit(text[pos + 1:end]))
            pos = end + 1
        elif text.startswith("States.", pos):
            sub_name, sub_args, pos = _parse_intrinsic(text, pos)
            args.append(("call", sub_name, sub_args))
        else:
            m = re.compile(r"[^,)\s]+").match(text, pos)
            if not m:
                raise RuntimeFault(f"bad argument in {text!r}")
            token, pos = m.group(0), m.end()
            if token.startswith("$"):
                args.append(("path", token))
            else:
                try:
                    args.append(("value", json.loads(token)))
                except ValueError:
                    raise RuntimeFault(f"bad argument {token!r} in {text!r}") from None
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text) and text[pos] == ",":
            pos += 1
            continue
        if pos < len(text) and text[pos] == ")":
            return name, args, pos + 1
        raise RuntimeFault(f"expected , or ) at {pos} in {text!r}")


def intrinsic(text, data, ctx):
    name, args, end = _parse_intrinsic(text)
    if text[end:].strip():
        raise RuntimeFault(f"trailing text after {text!r}")
    return _call(name, args, data, ctx)


def _arg(arg, data, ctx):
    if isinstance(arg, _Lit):
        return arg.value
    kind = arg[0]
    if kind == "path":
        return get_path(data, ctx, arg[1])
    if kind == "call":
        return _call(arg[1], arg[2], data, ctx)
    return arg[1]


def _format_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        raise RuntimeFault("States.Format takes strings, numbers, booleans and null only")
    return str(v)


def _call(name, args, data, ctx):
    if name == "States.Format":
        if not args or not isinstance(args[0], _Lit):
            raise RuntimeFault("States.Format needs a string literal first")
        values = [_arg(a, data, ctx) for a in args[1:]]
        raw, out, i, used = args[0].raw, [], 0, 0
        while i < len(raw):
            if raw[i] == "\\" and i + 1 < len(raw):
                out.append(raw[i + 1])
                i += 2
            elif raw.startswith("{}", i):
                if used >= len(values):
                    raise RuntimeFault("States.Format has more {} than arguments")
                out.append(_format_value(values[used]))
                used += 1
                i += 2
            else:
                out.append(raw[i])
                i += 1
        if used != len(values):
            raise RuntimeFault("States.Format has more arguments than {}")
        return "".join(out)
    values = [_arg(a, data, ctx) for a in args]
    if name == "States.StringToJson":
        return json.loads(values[0])
    if name == "States.JsonToString":
        return json.dumps(values[0], separators=(",", ":"))
    if name == "States.Array":
        return values
    if name == "States.ArrayGetItem":
        return values[0][int(values[1])]
    if name == "States.ArrayLength":
        return len(values[0])
    if name == "States.MathAdd":
        return int(values[0]) + int(values[1])
    if name == "States.StringSplit":
        return [s for s in re.split("[" + re.escape(values[1]) + "]", values[0]) if s]
    if name == "States.UUID":
        return str(uuid.uuid4())
    raise RuntimeFault(f"intrinsic {name} is not supported by this executor")


# ------------------------------------------------------------------------------------------
# Choice rules.

def _ts(v):
    return datetime.datetime.fromisoformat(v.replace("Z", "+00:00"))


_COMPARE = {
    "StringEquals": (str, lambda a, b: a == b),
    "StringLessThan": (str, lambda a, b: a < b),
    "StringGreaterThan": (str, lambda a, b: a > b),
    "StringLessThanEquals": (str, lambda a, b: a <= b),
    "StringGreaterThanEquals": (str, lambda a, b: a >= b),
    "StringMatches": (str, lambda a, b: fnmatch.fnmatchcase(a, b)),
    "NumericEquals": ((int, float), lambda a, b: a == b),
    "NumericLessThan": ((int, float), lambda a, b: a < b),
    "NumericGreaterThan": ((int, float), lambda a, b: a > b),
    "NumericLessThanEquals": ((int, float), lambda a, b: a <= b),
    "NumericGreaterThanEquals": ((int, float), lambda a, b: a >= b),
    "BooleanEquals": (bool, lambda a, b: a == b),
    "TimestampEquals": (str, lambda a, b: _ts(a) == _ts(b)),
    "TimestampLessThan": (str, lambda a, b: _ts(a) < _ts(b)),
    "TimestampGreaterThan": (str, lambda a, b: _ts(a) > _ts(b)),
    "TimestampLessThanEquals": (str, lambda a, b: _ts(a) <= _ts(b)),
    "TimestampGreaterThanEquals": (str, lambda a, b: _ts(a) >= _ts(b)),
}
_TESTS = {
    "IsNull": lambda v: v is None,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsString": lambda v: isinstance(v, str),
    "IsNumeric": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "IsTimestamp": lambda v: isinstance(v, str) and bool(re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", v)),
}


def choice_matches(rule, data, ctx):
    if "And" in rule:
        return all(choice_matches(r, data, ctx) for r in rule["And"])
    if "Or" in rule:
        return any(choice_matches(r, data, ctx) for r in rule["Or"])
    if "Not" in rule:
        return not choice_matches(rule["Not"], data, ctx)
    variable = rule.get("Variable")
    if "IsPresent" in rule:
        return has_path(data, ctx, variable) == bool(rule["IsPresent"])
    ops = [k for k in rule if k not in ("Variable", "Next", "Comment")]
    if len(ops) != 1:
        raise DefinitionError(f"choice rule {rule} must have exactly one comparison")
    op = ops[0]
    value = get_path(data, ctx, variable)
    if op in _TESTS:
        return _TESTS[op](value) == bool(rule[op])
    base, expected = (op[:-4], get_path(data, ctx, rule[op])) if op.endswith("Path") else (op, rule[op])
    if base not in _COMPARE:
        raise DefinitionError(f"choice operator {op} is not supported")
    kind, compare = _COMPARE[base]
    if isinstance(value, bool) and kind != bool:
        return False
    if not isinstance(value, kind):
        return False
    return compare(value, expected)


# ------------------------------------------------------------------------------------------
# The static check: every state, task and job definition, without running anything.

def check(model):
    """(errors, report): problems AWS would not report (or only at run time), and the commands."""
    errors = [f"${{{n}}} in the definition has no DefinitionSubstitutions entry"
              for n in sorted(model.unresolved)]
    report = {"state_machine": model.machine, "parameters": model.stack.params,
              "job_definitions": {}, "tasks": []}
    for jd in model.job_definitions:
        errors.extend(jd.problems())
        report["job_definitions"][jd.logical] = {
            "name": jd.name, "arn": jd.arn, "command": jd.command,
            "defaults": jd.defaults, "placeholders": jd.placeholders,
        }

    def walk(states_def, where):
        states = states_def.get("States") or {}
        if states_def.get("StartAt") not in states:
            errors.append(f"{where}: StartAt {states_def.get('StartAt')!r} is not a state")
        for name, st in states.items():
            here = f"{where}{name}"
            targets = [st.get("Next"), st.get("Default")]
            targets += [c.get("Next") for c in st.get("Choices") or []]
            targets += [c.get("Next") for c in st.get("Catch") or []]
            for t in targets:
                if t is not None and t not in states:
                    errors.append(f"{here}: Next {t!r} is not a state")
            typ = st.get("Type")
            if typ not in ("Task", "Choice", "Pass", "Wait", "Succeed", "Fail", "Map"):
                errors.append(f"{here}: state type {typ} is not supported by this executor")
            if typ == "Task":
                check_task(here, st)
            if typ == "Map":
                reader = st.get("ItemReader")
                if reader and reader.get("Resource") != S3_GET_OBJECT:
                    errors.append(f"{here}: ItemReader {reader.get('Resource')} is not supported")
                if reader and (reader.get("ReaderConfig") or {}).get("InputType", "JSON") != "JSON":
                    errors.append(f"{here}: only ItemReader InputType JSON is supported")
                for unsupported in ("ResultWriter", "ToleratedFailurePercentage",
                                    "ToleratedFailureCount", "ItemBatcher"):
                    if unsupported in st:
                        errors.append(f"{here}: {unsupported} is not supported by this executor")
                inner = st.get("ItemProcessor") or st.get("Iterator")
                if not inner:
                    errors.append(f"{here}: a Map needs an ItemProcessor")
                else:
                    config = inner.get("ProcessorConfig") or {}
                    if config.get("Mode", "INLINE") not in ("INLINE", "DISTRIBUTED"):
                        errors.append(f"{here}: ProcessorConfig.Mode {config.get('Mode')!r}")
                    if config.get("Mode") == "DISTRIBUTED":
                        if config.get("ExecutionType") not in ("STANDARD", "EXPRESS"):
                            errors.append(f"{here}: a DISTRIBUTED Map needs ExecutionType "
                                          "STANDARD or EXPRESS")
                        if _uses_map_context(inner):
                            errors.append(f"{here}: $$.Map is not in a DISTRIBUTED Map's child "
                                          "executions (use it in ItemSelector)")
                    elif reader:
                        errors.append(f"{here}: an ItemReader needs a DISTRIBUTED Map")
                    walk(inner, here + "/")

    def check_task(here, st):
        resource = st.get("Resource")
        params = st.get("Parameters") or {}
        if resource == BATCH_SYNC:
            jd_ref = params.get("JobDefinition")
            if jd_ref is None:
                if "JobDefinition.$" not in params:
                    errors.append(f"{here}: no JobDefinition")
                return  # dynamic: checked when it runs
            try:
                jd = model.job_definition(jd_ref)
                if "JobQueue" in params:
                    model.queue(params["JobQueue"])
                elif "JobQueue.$" not in params:
                    errors.append(f"{here}: no JobQueue")
                job_name = params.get("JobName")
                if job_name is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", job_name):
                    errors.append(f"{here}: JobName {job_name!r} is not a valid Batch job name")
                task_params = params.get("Parameters")
                if task_params is None and "Parameters.$" in params:
                    report["tasks"].append({"state": here, "job_definition": jd.logical, "argv": None})
                    return
                static = {}
                for k, v in (task_params or {}).items():
                    # A `.$` value is known only at run time: a placeholder stands for it.
                    static[k[:-2] if k.endswith(".$") else k] = v if not k.endswith(".$") else f"<{v}>"
                overrides = params.get("ContainerOverrides") or {}
                argv = batch_argv(jd, static, overrides.get("Command"), here)
                report["tasks"].append({"state": here, "job_definition": jd.logical, "argv": argv})
            except DefinitionError as e:
                errors.append(str(e))
        elif resource == SNS_PUBLISH:
            topic = params.get("TopicArn")
            if topic is not None and topic not in model.topics:
                errors.append(f"{here}: unknown SNS topic {topic!r}")
            if topic is None and "TopicArn.$" not in params:
                errors.append(f"{here}: no TopicArn")
        elif isinstance(resource, str) and resource.startswith(AWS_SDK_S3):
            action = resource[len(AWS_SDK_S3):]
            if action not in SDK_S3_ACTIONS:
                errors.append(f"{here}: aws-sdk:s3:{action} is not supported by this executor")
                return
            for field in SDK_S3_ACTIONS[action]:
                if field not in params and field + ".$" not in params:
                    errors.append(f"{here}: s3:{action} needs {field}")
        else:
            errors.append(f"{here}: Task resource {resource} is not supported by this executor")

    walk(model.definition, "")
    for task in report["tasks"]:
        task["state_machine"] = model.machine
    return errors, report


def _uses_map_context(value):
    if isinstance(value, dict):
        return any(_uses_map_context(v) for v in value.values())
    if isinstance(value, list):
        return any(_uses_map_context(v) for v in value)
    return isinstance(value, str) and "$$.Map." in value


# ------------------------------------------------------------------------------------------
# The executor.

def _now():
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_matches(names, error):
    if error == "States.Runtime":
        return False
    if "States.ALL" in names or error in names:
        return True
    # States.TaskFailed matches any error but States.Timeout (AWS documents it so).
    return "States.TaskFailed" in names and error != "States.Timeout"


class Execution:
    """One execution of the model's definition."""

    def __init__(self, model, binary, time_scale, sns_log, name, hooks=None):
        self.model = model
        self.hooks = dict(hooks or {})  # state name -> shell command, run once before it
        self.binary = binary
        self.time_scale = time_scale
        self.sns_log = sns_log
        self.lock = threading.Lock()
        self.visits = []
        self.path = []
        self.notifications = []
        self.max_parallel = {}
        stack = model.stack
        self.name = name
        self.context = {
            "Execution": {
                "Id": stack.arn("states", f"execution:{model.machine_name}:{name}"),
                "Name": name,
                "StartTime": _now(),
            },
            "StateMachine": {"Id": model.machine_arn, "Name": model.machine_name},
        }

    def log(self, text):
        with self.lock:
            print(text, flush=True)

    def run_hook(self, name, visit):
        """--before-state NAME=CMD: the command, once, before the state is first entered."""
        with self.lock:
            command = self.hooks.pop(name, None)
        if command is None:
            return
        self.log(f"   hook before {name}: {command}")
        proc = subprocess.run(command, shell=True, capture_output=True, check=False)
        visit["hook"] = {"command": command, "exit_code": proc.returncode,
                         "stdout": proc.stdout.decode("utf-8", "replace")[:STDOUT_CAP],
                         "stderr_tail": proc.stderr.decode("utf-8", "replace")[-STDERR_TAIL:]}
        if proc.returncode != 0:
            raise DefinitionError(f"the hook before {name} exited {proc.returncode}: "
                                  + proc.stderr.decode("utf-8", "replace")[-STDERR_TAIL:])

    # -- states

    def run(self, execution_input):
        self.context["Execution"]["Input"] = execution_input
        return self.run_states(self.model.definition, execution_input, self.context, "", top=True)

    def run_states(self, machine, data, ctx, prefix, top=False):
        states = machine["States"]
        name = machine["StartAt"]
        while True:
            st = states[name]
            visit = {"state": prefix + name, "type": st["Type"], "entered": _now(),
                     "attempts": [], "retries": 0}
            with self.lock:
                self.visits.append(visit)
                if top:
                    self.path.append(name)
            self.log(f"-> {prefix}{name} ({st['Type']})")
            state_ctx = dict(ctx, State={"Name": name, "EnteredTime": visit["entered"], "RetryCount": 0})
            self.run_hook(name, visit)
            typ = st["Type"]
            if typ == "Succeed":
                return select_path(select_path(data, state_ctx, st, "InputPath"), state_ctx, st, "OutputPath")
            if typ == "Fail":
                error = st.get("Error") or (
                    get_path(data, state_ctx, st["ErrorPath"]) if "ErrorPath" in st else "")
                cause = st.get("Cause") or (
                    get_path(data, state_ctx, st["CausePath"]) if "CausePath" in st else "")
                visit["error"] = {"Error": error, "Cause": cause}
                raise StatesError(error, cause)
            if typ == "Choice":
                effective = select_path(data, state_ctx, st, "InputPath")
                nxt = next((c["Next"] for c in st.get("Choices") or []
                            if choice_matches(c, effective, state_ctx)), st.get("Default"))
                if nxt is None:
                    raise StatesError("States.NoChoiceMatched", f"no choice of {name} matched")
                visit["next"] = nxt
                data = select_path(effective, state_ctx, st, "OutputPath")
                name = nxt
                continue
            if typ == "Pass":
                effective = select_path(data, state_ctx, st, "InputPath")
                if "Result" in st:
                    result = copy.deepcopy(st["Result"])
                elif "Parameters" in st:
                    result = payload(st["Parameters"], effective, state_ctx)
                else:
                    result = effective
                data = self.place_result(data, st, result, state_ctx)
            elif typ == "Wait":
                seconds = st.get("Seconds")
                if "SecondsPath" in st:
                    seconds = get_path(data, state_ctx, st["SecondsPath"])
                until = st.get("Timestamp")
                if "TimestampPath" in st:
                    until = get_path(data, state_ctx, st["TimestampPath"])
                if until is not None:
                    now = datetime.datetime.now(datetime.timezone.utc)
                    seconds = max(0.0, (_ts(until) - now).total_seconds())
                time.sleep(float(seconds or 0) * self.time_scale)
                data = select_path(select_path(data, state_ctx, st, "InputPath"), state_ctx, st, "OutputPath")
            elif typ in ("Task", "Map"):
                data, nxt = self.run_with_retry(name, st, data, state_ctx, visit)
                if nxt is not None:
                    name = nxt
                    continue
            else:
                raise DefinitionError(f"state type {typ} is not supported")
            if st.get("End"):
                return data
            name = st["Next"]

    def place_result(self, raw, st, result, ctx):
        """ResultSelector was applied by the caller; ResultPath then OutputPath."""
        if "ResultPath" in st and st["ResultPath"] is None:
            out = raw
        else:
            out = set_path(raw, st.get("ResultPath", "$"), result)
        return select_path(out, ctx, st, "OutputPath")

    def run_with_retry(self, name, st, raw, ctx, visit):
        """(output, None) on success, (output, catcher's Next) when caught; raises otherwise."""
        retriers = st.get("Retry") or []
        counts = [0] * len(retriers)
        while True:
            try:
                effective = select_path(raw, ctx, st, "InputPath")
                if st["Type"] == "Task":
                    result = self.task(st, effective, ctx, visit)
                else:
                    result = self.map(name, st, effective, ctx, visit)
                if "ResultSelector" in st:
                    result = payload(st["ResultSelector"], result, ctx)
                return self.place_result(raw, st, result, ctx), None
            except RuntimeFault:
                raise
            except StatesError as e:
                index = next((i for i, r in enumerate(retriers)
                              if _error_matches(r.get("ErrorEquals") or [], e.error)), None)
                if index is not None and counts[index] < retriers[index].get("MaxAttempts", 3):
                    r = retriers[index]
                    delay = r.get("IntervalSeconds", 1) * r.get("BackoffRate", 2.0) ** counts[index]
                    if "MaxDelaySeconds" in r:
                        delay = min(delay, r["MaxDelaySeconds"])
                    counts[index] += 1
                    visit["retries"] += 1
                    ctx = dict(ctx, State=dict(ctx["State"], RetryCount=visit["retries"]))
                    self.log(f"   {name}: {e.error}; retry {counts[index]} of "
                             f"{r.get('MaxAttempts', 3)} in {delay:g}s x {self.time_scale:g}")
                    time.sleep(delay * self.time_scale)
                    continue
                catcher = next((c for c in st.get("Catch") or []
                                if _error_matches(c.get("ErrorEquals") or [], e.error)), None)
                if catcher is None:
                    visit["error"] = {"Error": e.error, "Cause": e.cause}
                    raise
                visit["caught"] = {"Error": e.error, "Cause": e.cause, "Next": catcher["Next"]}
                self.log(f"   {name}: {e.error} caught -> {catcher['Next']}")
                error_output = {"Error": e.error, "Cause": e.cause}
                if "ResultPath" in catcher and catcher["ResultPath"] is None:
                    out = raw
                else:
                    out = set_path(raw, catcher.get("ResultPath", "$"), error_output)
                return out, catcher["Next"]

    # -- tasks

    def task(self, st, effective, ctx, visit):
        params = payload(st["Parameters"], effective, ctx) if "Parameters" in st else effective
        resource = st.get("Resource")
        where = ctx["State"]["Name"]
        if resource == BATCH_SYNC:
            return self.batch(params, st.get("TimeoutSeconds"), where, visit)
        if resource == SNS_PUBLISH:
            return self.publish(params, where, visit)
        if isinstance(resource, str) and resource.startswith(AWS_SDK_S3):
            return self.sdk_s3(resource[len(AWS_SDK_S3):], params, where, visit)
        raise DefinitionError(f"{where}: Task resource {resource} is not supported")

    def sdk_s3(self, action, params, where, visit):
        """An AWS SDK integration with S3: the response as the SDK gives it (PascalCase)."""
        if action not in SDK_S3_ACTIONS:
            raise DefinitionError(f"{where}: aws-sdk:s3:{action} is not supported")
        s3 = _s3_client()
        record = {"sdk": f"s3:{action}", "parameters": params}
        with self.lock:
            visit["attempts"].append(record)
        self.log(f"   {where}: s3:{action} {json.dumps(params)}")
        try:
            if action == "listObjectsV2":
                out = s3.list_objects_v2(**params)
                result = {"Name": out.get("Name"), "Prefix": out.get("Prefix", ""),
                          "KeyCount": out.get("KeyCount", 0), "MaxKeys": out.get("MaxKeys"),
                          "IsTruncated": out.get("IsTruncated", False),
                          "Contents": [{"Key": o["Key"], "Size": o["Size"], "ETag": o.get("ETag"),
                                        "LastModified": o["LastModified"].isoformat()}
                                       for o in out.get("Contents", [])]}
            else:
                s3.delete_object(**params)
                result = {}
        except Exception as e:  # noqa: BLE001 - the SDK's error becomes S3.<Code>Exception
            code = getattr(e, "response", {}).get("Error", {}).get("Code") or type(e).__name__
            record["error"] = f"S3.{code}Exception"
            raise StatesError(f"S3.{code}Exception", str(e)) from None
        record["result"] = result
        return result

    def batch(self, params, timeout, where, visit):
        jd = self.model.job_definition(params.get("JobDefinition"))
        queue = self.model.queue(params.get("JobQueue"))
        task_params = params.get("Parameters") or {}
        overrides = params.get("ContainerOverrides") or {}
        argv = batch_argv(jd, task_params, overrides.get("Command"), where)
        env = dict(os.environ)
        env.update(jd.environment)
        for e in overrides.get("Environment") or []:
            env[e["Name"]] = str(e["Value"])
        if not self.binary:
            raise DefinitionError("--binary is required to run Batch tasks")
        job_id = str(uuid.uuid4())
        attempt = {"job_definition": jd.logical, "job_id": job_id, "argv": argv, "started": _now()}
        with self.lock:
            visit["attempts"].append(attempt)
        self.log(f"   {where}: {jd.name}: {' '.join(argv)}")
        t0 = time.monotonic()
        try:
            proc = subprocess.run([self.binary] + argv, env=env, capture_output=True,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            attempt.update(exit_code=None, seconds=round(time.monotonic() - t0, 3), error="States.Timeout")
            raise StatesError("States.Timeout", f"job {job_id} ran longer than {timeout}s") from None
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        attempt.update(exit_code=proc.returncode, seconds=round(time.monotonic() - t0, 3),
                       stdout=stdout[:STDOUT_CAP], stderr_tail=stderr[-STDERR_TAIL:])
        if proc.returncode != 0:
            attempt["error"] = "States.TaskFailed"
            # Step Functions' Cause of a failed job is the job's description (JSON, one line);
            # the job's stderr is in CloudWatch Logs only (here: the summary's attempt).
            stream = f"{jd.stream_prefix or jd.name}/default/{job_id}"
            container = {"Command": argv, "ExitCode": proc.returncode, "LogStreamName": stream}
            description = {
                "Attempts": [{"Container": {"ExitCode": proc.returncode, "LogStreamName": stream},
                              "StatusReason": "Essential container in task exited"}],
                "Container": container,
                "JobArn": self.model.stack.arn("batch", f"job/{job_id}"),
                "JobDefinition": jd.arn,
                "JobId": job_id,
                "JobName": params.get("JobName"),
                "JobQueue": queue,
                "Parameters": dict(jd.defaults, **task_params),
                "Status": "FAILED",
                "StatusReason": "Essential container in task exited",
            }
            raise StatesError("States.TaskFailed", json.dumps(description, separators=(",", ":")))
        return {
            "JobId": job_id,
            "JobName": params.get("JobName"),
            "JobArn": self.model.stack.arn("batch", f"job/{job_id}"),
            "JobQueue": queue,
            "JobDefinition": jd.arn,
            "Status": "SUCCEEDED",
            "Parameters": dict(jd.defaults, **task_params),
            "Container": {"Command": argv, "ExitCode": 0},
        }

    def publish(self, params, where, visit):
        topic = params.get("TopicArn")
        if topic not in self.model.topics:
            raise DefinitionError(f"{where}: unknown SNS topic {topic!r}")
        message = params.get("Message")
        if message is None:
            raise StatesError("SNS.InvalidParameterException", "Message is required")
        if not isinstance(message, str):
            message = json.dumps(message)
        subject = params.get("Subject")
        if subject is not None and (len(subject) >= 100 or "\n" in subject or not subject.isascii()):
            raise StatesError("SNS.InvalidParameterException", f"invalid Subject {subject!r}")
        record = {"state": where, "topic": topic, "subject": subject, "message": message,
                  "execution": self.context["Execution"]["Id"], "message_id": str(uuid.uuid4())}
        with self.lock:
            self.notifications.append(record)
            visit["attempts"].append({"sns": record})
            if self.sns_log:
                with open(self.sns_log, "w", encoding="utf-8") as f:
                    json.dump(self.notifications, f, indent=2)
        self.log(f"   {where}: published to {topic}: {subject}")
        return {"MessageId": record["message_id"]}

    # -- Map

    def map(self, name, st, effective, ctx, visit):
        if "ItemReader" in st:
            items = self.read_items(st["ItemReader"], effective, ctx)
        else:
            items = get_path(effective, ctx, st.get("ItemsPath", "$"))
        if not isinstance(items, list):
            raise RuntimeFault(f"{name}: the items are not an array")
        processor = st.get("ItemProcessor") or st.get("Iterator")
        distributed = (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
        selector = st.get("ItemSelector", st.get("Parameters"))
        map_run = f"{self.context['Execution']['Name']}/{st.get('Label', name)}:{uuid.uuid4()}"
        limit = int(st.get("MaxConcurrency") or 0) or max(len(items), 1)
        visit["items"] = len(items)
        running = [0]
        failed = threading.Event()

        def one(index, item):
            if failed.is_set():
                return None
            with self.lock:
                running[0] += 1
                self.max_parallel[name] = max(self.max_parallel.get(name, 0), running[0])
            try:
                # ItemSelector runs in the Map state's context, with $$.Map.Item.
                item_ctx = dict(ctx, Map={"Item": {"Index": index, "Value": item}})
                item_input = payload(selector, effective, item_ctx) if selector is not None else item
                if distributed:
                    # Each item is a child execution of its own: $$.Execution is the child's
                    # (not this execution's), and there is no $$.Map.
                    child = f"{uuid.uuid4()}"
                    stack = self.model.stack
                    item_ctx = {
                        "Execution": {
                            "Id": stack.arn("states", f"execution:{self.model.machine_name}/{map_run}:{child}"),
                            "Name": child,
                            "StartTime": _now(),
                            "Input": item_input,
                        },
                        "StateMachine": {"Id": stack.arn("states", f"stateMachine:{self.model.machine_name}/{map_run}"),
                                         "Name": f"{self.model.machine_name}/{map_run}"},
                    }
                return self.run_states(processor, item_input, item_ctx, f"{name}[{index}]/")
            except StatesError:
                failed.set()
                raise
            finally:
                with self.lock:
                    running[0] -= 1

        with ThreadPoolExecutor(max_workers=limit) as pool:
            futures = [pool.submit(one, i, item) for i, item in enumerate(items)]
            outcomes = []
            for f in futures:
                try:
                    outcomes.append((f.result(), None))
                except StatesError as e:
                    outcomes.append((None, e))
        visit["max_parallel"] = self.max_parallel.get(name, 0)
        failures = [err for _, err in outcomes if err is not None]
        if failures and distributed:
            # The Map Run fails as a whole (ToleratedFailure* 0): not with the child's error.
            raise StatesError("States.ExceedToleratedFailureThreshold",
                              f"The specified tolerated failure threshold was exceeded: "
                              f"{len(failures)} of {len(items)} child executions failed "
                              f"(first: {failures[0].error}: {failures[0].cause[:500]})")
        if failures:
            raise failures[0]
        return [out for out, _ in outcomes]

    def read_items(self, reader, effective, ctx):
        if reader.get("Resource") != S3_GET_OBJECT:
            raise DefinitionError(f"ItemReader {reader.get('Resource')} is not supported")
        config = reader.get("ReaderConfig") or {}
        if config.get("InputType", "JSON") != "JSON":
            raise DefinitionError("only ItemReader InputType JSON is supported")
        params = payload(reader.get("Parameters") or {}, effective, ctx)
        s3 = _s3_client()
        try:
            body = s3.get_object(Bucket=params["Bucket"], Key=params["Key"])["Body"].read()
        except Exception as e:  # noqa: BLE001 - any S3 failure is the state's failure
            where = f"s3://{params.get('Bucket')}/{params.get('Key')}"
            raise StatesError("States.ItemReaderFailed", f"{where}: {e}") from None
        try:
            items = json.loads(body)
        except ValueError as e:
            raise StatesError("States.ItemReaderFailed", f"not JSON: {e}") from None
        if not isinstance(items, list):
            raise StatesError("States.ItemReaderFailed", "the object does not hold a JSON array")
        max_items = config.get("MaxItems")
        return items[:int(max_items)] if max_items else items


def _s3_client():
    import boto3  # only the states that reach S3 need it
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                        region_name=os.environ.get("AWS_REGION", "us-east-1"))


# ------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("template", help="the CloudFormation template (YAML or JSON)")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="a stack parameter (repeatable; lists comma-separated)")
    ap.add_argument("--state-machine", help="logical id of the state machine (when several)")
    ap.add_argument("--definition", help="run this definition (JSON/YAML) against the template instead")
    ap.add_argument("--binary", help="the program every Batch job runs (the image's entrypoint)")
    ap.add_argument("--input", default="{}", help="the execution input (JSON)")
    ap.add_argument("--time-scale", type=float, default=1.0,
                    help="multiplies every Retry interval and Wait (0: no sleeping)")
    ap.add_argument("--summary", help="write the JSON summary here")
    ap.add_argument("--sns-log", help="write the published SNS messages here (JSON array)")
    ap.add_argument("--check", action="store_true", help="validate statically; run nothing")
    ap.add_argument("--dump-definition", metavar="FILE",
                    help="write the definition with its substitutions (for statelint) and stop")
    ap.add_argument("--stack-name", default="fineo-batch")
    ap.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    ap.add_argument("--account-id", default="123456789012")
    ap.add_argument("--execution-name", default=None)
    ap.add_argument("--before-state", action="append", default=[], metavar="NAME=CMD",
                    help="run the shell command CMD once, before state NAME is first entered "
                         "(tests: e.g. another run committing meanwhile); repeatable")
    args = ap.parse_args(argv)

    summary = {"status": None}

    def finish(code):
        if args.summary:
            with open(args.summary, "w", encoding="utf-8") as f:
                json.dump(summary, f, indent=2)
        return code

    def record_check(errors, report):
        """Puts a check's report into the summary; prints its errors and says whether any."""
        summary.update(report)
        summary["errors"] = errors
        for e in errors:
            print(f"sfn_local: definition error: {e}", file=sys.stderr)
        if errors:
            summary["status"] = "INVALID"
        return bool(errors)

    def checked(report, prefix):
        """Prints each task's command (--check) and ends the run as valid."""
        for task in report["tasks"]:
            print(f"{prefix(task)}{task['state']}: {task['job_definition']}: {task['argv']}")
        summary["status"] = "VALID"
        return finish(0)

    try:
        given = {}
        for p in args.param:
            key, sep, value = p.partition("=")
            if not sep:
                raise DefinitionError(f"--param {p!r} is not KEY=VALUE")
            given[key] = value
        hooks = {}
        for h in args.before_state:
            state, sep, command = h.partition("=")
            if not sep or not state or not command:
                raise DefinitionError(f"--before-state {h!r} is not NAME=CMD")
            hooks[state] = command
        stack = Stack(load_yaml(args.template), given, args.stack_name, args.region, args.account_id)
        machines = stack.of_type("AWS::StepFunctions::StateMachine")
        if args.check and args.state_machine is None and args.definition is None and len(machines) > 1:
            # --check of a template with several state machines: every one of them.
            errors, report = [], None
            for machine in machines:
                m_errors, m_report = check(Model(stack, machine))
                errors.extend(f"{machine}: {e}" for e in m_errors if f"{machine}: {e}" not in errors)
                if report is None:
                    report = m_report
                    report["state_machine"] = machines
                else:
                    report["tasks"].extend(m_report["tasks"])
            errors = list(dict.fromkeys(errors))
            if record_check(errors, report):
                return finish(2)
            return checked(report, lambda t: f"{t['state_machine']}.")
        model = Model(stack, args.state_machine, args.definition)
        if args.dump_definition:
            if model.unresolved:
                missing = ", ".join(sorted(model.unresolved))
                raise DefinitionError(f"no DefinitionSubstitutions for: {missing}")
            with open(args.dump_definition, "w", encoding="utf-8") as f:
                json.dump(model.definition, f, indent=2)
            return finish(0)
        errors, report = check(model)
        if record_check(errors, report):
            return finish(2)
        if args.check:
            return checked(report, lambda t: "")
        execution_input = json.loads(args.input)
        name = args.execution_name or f"local-{uuid.uuid4()}"
        ex = Execution(model, args.binary, args.time_scale, args.sns_log, name, hooks)
        summary["execution"] = ex.context["Execution"]["Id"]
        try:
            output = ex.run(execution_input)
            summary.update(status="SUCCEEDED", output=output)
            code = 0
        except StatesError as e:
            summary.update(status="FAILED", error=e.error, cause=e.cause)
            code = 1
        except DefinitionError as e:
            summary.update(status="INVALID", error="Local.DefinitionError", cause=str(e))
            print(f"sfn_local: definition error: {e}", file=sys.stderr)
            code = 2
        summary.update(path=ex.path, states=ex.visits, notifications=ex.notifications,
                       max_parallel=ex.max_parallel, hooks_not_run=sorted(ex.hooks))
        print(f"execution {summary['status']}: " + " -> ".join(ex.path)
              + (f"  [{summary.get('error')}]" if code else ""), flush=True)
        return finish(code)
    except DefinitionError as e:
        print(f"sfn_local: definition error: {e}", file=sys.stderr)
        summary.update(status="INVALID", error="Local.DefinitionError", cause=str(e))
        return finish(2)


if __name__ == "__main__":
    sys.exit(main())
