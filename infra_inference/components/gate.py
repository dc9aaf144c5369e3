"""The program's validation gate: none of our components is registered until all of them validated.

Why: the engine applies a resource as soon as its registration arrives, and
`pulumi up --skip-preview` (what the Automation API's `up()` runs) has no
preview to stop a bad program first. A Python program's registrations go out
only once its synchronous code gives the event loop a turn, but when the
program raises, the SDK still sends the ones already queued
(`pulumi.runtime.stack.run_pulumi_func` waits for outstanding RPCs before it
reports the error). Without the gate, a spec error in a program's second
component left the first one's objects created.

So every component registers with `depends_on` this turn's gate (and its
children wait for their parent's URN, so they wait too). The gate is decided
on the event loop's next turn, once the program's synchronous code has run to
its end: if a component's error escaped the program, it stays shut, each
waiting registration fails with a `Withheld` repeating that error, and the
engine receives none of them. An error the program caught itself (to try
another variant, say) does not shut it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pulumi


class _Gate:
    """One turn of the event loop's worth of components."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.failures: list[Exception] = []
        self.future: asyncio.Future[list[pulumi.Resource]] = loop.create_future()
        # Mark the outcome retrieved: when every component failed, nothing waits on it.
        self.future.add_done_callback(lambda f: f.cancelled() or f.exception())
        loop.call_soon(self._decide)

    def _decide(self) -> None:
        _turns.pop(self.loop, None)  # components built after this (inside an apply) get a new gate
        escaped = next((e for e in self.failures if _escaped(e)), None)
        if escaped is None:
            self.future.set_result([])
        else:
            self.future.set_exception(Withheld(escaped))


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Gate] = weakref.WeakKeyDictionary()


def _escaped(error: BaseException) -> bool:
    """Whether `error` propagated out of the program into the Pulumi SDK that ran it.

    A traceback lists the frames an exception unwound through, from the one that caught it down
    to the one that raised it. An error that failed the program was caught by the SDK (its
    `run_pulumi_func`, or the provider's `Construct`), so it passed through a frame of `pulumi`;
    one the program caught itself stayed in the program's and our frames.
    """
    tb = error.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == "pulumi" or module.startswith("pulumi."):
            return True
        tb = tb.tb_next
    return False


def _current() -> _Gate:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # a component built outside a program (no loop running yet)
        loop = asyncio.get_event_loop_policy().get_event_loop()
    gate = _turns.get(loop)
    if gate is None:
        gate = _turns[loop] = _Gate(loop)
    return gate


class Withheld(RuntimeError):
    """What each registration the gate held back fails with; `failure` is the component's own error.

    Not a ValueError: the SDK rewraps those as "While processing resource <the valid one>", which
    would point the user at the wrong component. This becomes the program's reported error (the
    SDK reports the first failed registration rather than the program's own exception), so its
    message repeats the failure whole, field names included.
    """

    def __init__(self, failure: Exception) -> None:
        self.failure = failure
        super().__init__(f"{failure}\n(nothing of this program's infra-inference components was sent to the "
                         f"engine: every component is registered only once all of them have validated)")


@contextmanager
def validating() -> Iterator[None]:
    """Wrap a component's validation: its error, if it fails the program, shuts the gate for every component."""
    try:
        yield
    except Exception as e:
        _current().failures.append(e)
        raise


def held(opts: pulumi.ResourceOptions | None) -> pulumi.ResourceOptions:
    """`opts` plus a dependency on the gate, for a component's own registration."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
        depends_on=pulumi.Output.from_input(_current().future)))
