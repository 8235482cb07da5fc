"""Tasks: what a study predicts. One :class:`~learnerprobe.tasks.base.Task` subclass per task
and one entry in :data:`TASKS` (:func:`register_task`); the study config validates ``task``
against this registry and the runner and ``learnerprobe train`` prepare task data through it.
"""

from __future__ import annotations

from learnerprobe.errors import ConfigError
from learnerprobe.tasks.base import LabelKind, Task, TaskData
from learnerprobe.tasks.cefr import CefrTask
from learnerprobe.tasks.l1 import L1Task

__all__ = ["TASKS", "LabelKind", "Task", "TaskData", "get_task", "register_task",
           "task_names", "unregister_task"]

TASKS: dict[str, Task] = {}


def register_task(task: Task, *, replace: bool = False) -> Task:
    """Add a task (an instance) under ``task.name``; ValueError if the name is taken."""
    if task.name in TASKS and not replace:
        raise ValueError(f"task {task.name!r} is already registered")
    TASKS[task.name] = task
    return task


def unregister_task(name: str) -> None:
    TASKS.pop(name, None)


def task_names() -> list[str]:
    return list(TASKS)


def get_task(name: str) -> Task:
    """The registered task, else a ConfigError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


register_task(CefrTask())
register_task(L1Task())
