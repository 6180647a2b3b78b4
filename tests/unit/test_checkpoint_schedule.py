"""When SQLite's write-ahead log is copied back: the pure schedule of the checkpointer."""

from __future__ import annotations

import pytest

from jobpulse.storage.sqlite.checkpoints import MAX_WAIT_S, Checkpoint, Schedule

FRAME = 4096 + 24


def schedule_after(*checkpoints: Checkpoint) -> Schedule:
    schedule = Schedule(threshold=1000, frame_bytes=FRAME)
    for checkpoint in checkpoints:
        schedule.checkpointed(checkpoint)
    return schedule


def test_the_first_look_checkpoints_to_learn_the_log() -> None:
    assert Schedule(1000, FRAME).is_due(0.0, size=32, modified_ns=1)


def test_an_unchanged_log_with_nothing_left_waits() -> None:
    schedule = schedule_after(Checkpoint(0.0, 500, 500, 500 * FRAME, 7))
    assert not schedule.is_due(60.0, 500 * FRAME, 7)


def test_frames_a_reader_kept_from_copying_are_tried_again_in_time() -> None:
    schedule = schedule_after(Checkpoint(0.0, 500, 200, 500 * FRAME, 7))
    assert not schedule.is_due(0.5, 500 * FRAME, 7)
    assert schedule.is_due(MAX_WAIT_S, 500 * FRAME, 7)


def test_a_log_growing_past_its_size_by_the_threshold_is_due_at_once() -> None:
    schedule = schedule_after(Checkpoint(0.0, 100, 100, 100 * FRAME, 7))
    assert not schedule.is_due(0.1, 1000 * FRAME, 8)  # 900 frames more
    assert schedule.is_due(0.1, 1101 * FRAME, 8)


def test_frames_written_inside_the_log_are_estimated_from_the_measured_rate() -> None:
    # 2,000 frames a second between the last two checkpoints; the log started over after
    # the first (all of it was copied), so its size says nothing of what is written now.
    schedule = schedule_after(
        Checkpoint(0.0, 3000, 3000, 3000 * FRAME, 1),
        Checkpoint(1.0, 2000, 2000, 3000 * FRAME, 2),
    )
    assert schedule.rate == pytest.approx(2000)
    assert not schedule.is_due(1.4, 3000 * FRAME, 3)  # about 800 frames
    assert schedule.is_due(1.6, 3000 * FRAME, 3)  # about 1,200


def test_a_log_that_did_not_start_over_counts_only_its_new_frames() -> None:
    schedule = schedule_after(
        Checkpoint(0.0, 800, 600, 800 * FRAME, 1),  # a reader kept 200 frames
        Checkpoint(2.0, 1000, 1000, 1000 * FRAME, 2),
    )
    assert schedule.rate == pytest.approx(100)


def test_any_change_is_copied_back_within_the_longest_wait() -> None:
    schedule = schedule_after(Checkpoint(0.0, 10, 10, 10 * FRAME, 1))
    assert not schedule.is_due(MAX_WAIT_S / 2, 10 * FRAME, 2)
    assert schedule.is_due(MAX_WAIT_S, 10 * FRAME, 2)


def test_a_refused_checkpoint_teaches_nothing() -> None:
    schedule = schedule_after(Checkpoint(0.0, 10, 10, 10 * FRAME, 1))
    schedule.checkpointed(Checkpoint(1.0, -1, -1, 10 * FRAME, 2))
    assert schedule.last == Checkpoint(0.0, 10, 10, 10 * FRAME, 1)
    assert schedule.rate == 0
