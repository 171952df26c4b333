"""A new turn's planning hop runs while the event loop waits for it (bounded), so the first
token does not share the GIL with every running stream (chat.services.turns.first_hop)."""

import asyncio
import time

import pytest

from chat.services.turns import first_hop

# The hop closes the database thread's old connections first, as every hop there does.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.serial]


@pytest.fixture(autouse=True)
def _fresh_budget(monkeypatch):
    monkeypatch.setattr(first_hop, "_budget", first_hop._Budget())


class Streams:
    """Stand-in for the running streams: a task that counts its turns on the loop."""

    def __init__(self) -> None:
        self.turns = 0
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def during(self, hop) -> tuple[object, int]:
        await asyncio.sleep(0.01)  # running
        before = self.turns
        result = await hop
        return result, self.turns - before

    def stop(self) -> None:
        self.task.cancel()


def planning(seconds: float, value: str = "plan"):
    def plan() -> str:
        time.sleep(seconds)  # database work: the GIL is free meanwhile
        return value

    return plan


async def turns_of_other_work_during_a_plan(settings, priority_ms: float) -> int:
    settings.TURN_START_PRIORITY_MS = priority_ms
    streams = Streams()
    result, turns = await streams.during(first_hop.run(planning(0.02)))
    streams.stop()
    assert result == "plan"
    return turns


async def test_the_loop_waits_for_the_plan_instead_of_running_other_work(settings):
    # Nor does the caller wait behind other work for the result's hand-back.
    assert await turns_of_other_work_during_a_plan(settings, 200) == 0


async def test_with_the_setting_off_other_work_runs_while_the_plan_does(settings):
    assert await turns_of_other_work_during_a_plan(settings, 0) > 20


async def test_a_plan_longer_than_the_limit_lets_the_loop_go_on_after_it(settings):
    settings.TURN_START_PRIORITY_MS = 10
    streams = Streams()
    began = time.monotonic()
    result, turns = await streams.during(first_hop.run(planning(0.3)))
    streams.stop()
    assert result == "plan" and time.monotonic() - began >= 0.3
    assert turns > 20  # the loop ran again after 10 ms, long before the plan ended


async def test_a_burst_of_plans_blocks_the_loop_at_most_a_tenth_of_the_time(settings):
    settings.TURN_START_PRIORITY_MS = 50
    streams = Streams()
    turns = [(await streams.during(first_hop.run(planning(0.04))))[1] for _ in range(5)]
    streams.stop()
    # Five 40 ms plans: the loop waited through the budget (0.1 s, refilled at a tenth of the
    # time), two of them at most; during the others it went on with the streams as before.
    # Counted in turns, not wall time: a busy machine's own pauses do not count.
    held = sum(n <= 3 for n in turns)
    assert 1 <= held <= 2, turns
    assert sum(n > 20 for n in turns) >= 3, turns


async def test_a_refused_plan_raises_in_the_caller(settings):
    settings.TURN_START_PRIORITY_MS = 100

    def refused() -> None:
        raise ValueError("no such chat")

    with pytest.raises(ValueError, match="no such chat"):
        await first_hop.run(refused)
