"""A stand-in for services.generation.fal.FalQueue in unit tests: scripted answers to submit, cancels recorded."""

from __future__ import annotations

__all__ = ["StubQueue"]


class StubQueue:
    """Each submit takes the next scripted answer: a request id to return, or an exception to raise."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.submitted: list[dict] = []
        self.cancelled: list[str] = []

    def cancel(self, request_id):
        self.cancelled.append(request_id)

    def submit(self, arguments):
        self.submitted.append(arguments)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer
