"""One trainer per run directory: a live lease is left alone, a stale or dead one is taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from optsweep import contract, lease
from optsweep.contract import Status
from optsweep.lease import RunLease, read_lease
from optsweep.rundir import RunDir
from optsweep.train import train
from tests import processes
from tests.conftest import QUICK, make_cfg


def plant(run_dir, *, owner="node7:4242", host="node7", pid=4242, age_s=0.0) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {"owner": owner, "host": host, "pid": pid, "token": "theirs",
              "renewed": time.time() - age_s}
    (run_dir / contract.LEASE_FILE).write_text(json.dumps(record))


def test_a_run_whose_lease_is_live_elsewhere_is_left_alone(tmp_path):
    plant(tmp_path, age_s=10)
    outcome = train(make_cfg(QUICK), tmp_path)
    assert outcome.status == Status.UNFINISHED and "running elsewhere: node7:4242" in outcome.error
    assert not (tmp_path / contract.METRICS_FILE).exists()  # nothing trained, nothing overwritten
    assert read_lease(tmp_path)["token"] == "theirs"


def test_a_stale_lease_is_taken_over_and_released_at_the_end(tmp_path):
    plant(tmp_path, age_s=lease.STALE_S + 1)
    outcome = train(make_cfg(QUICK), tmp_path)
    assert outcome.status == Status.COMPLETED
    assert not (tmp_path / contract.LEASE_FILE).exists()


def test_a_dead_process_of_this_host_is_retaken_at_once(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    plant(tmp_path, owner=f"{socket.gethostname()}:{dead.pid}", host=socket.gethostname(),
          pid=dead.pid, age_s=1)
    with RunLease(tmp_path) as held:
        assert held.holder is None


def test_a_requeued_slurm_job_retakes_its_own_lease_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "991")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    plant(tmp_path, owner="slurm:991", age_s=5)  # the same job before its requeue, another node
    with RunLease(tmp_path) as held:
        assert held.holder is None and read_lease(tmp_path)["owner"] == "slurm:991"
    plant(tmp_path, owner="slurm:992", age_s=5)  # another job: live, left alone
    with RunLease(tmp_path) as held:
        assert held.holder["owner"] == "slurm:992"


def test_the_holder_renews_and_a_second_holder_is_refused(tmp_path):
    clock = [1000.0]
    first = RunLease(tmp_path, clock=lambda: clock[0], owner="a", refresh_s=3600)
    with first:
        clock[0] += 100
        assert first.renew() and read_lease(tmp_path)["renewed"] == 1100.0
        second = RunLease(tmp_path, clock=lambda: clock[0], owner="b")
        assert second.acquire()["owner"] == "a"
        clock[0] += lease.STALE_S  # the first stops renewing: its lease goes stale
        assert second.acquire() is None and not first.renew()
    assert read_lease(tmp_path)["owner"] == "b"  # the first's exit does not delete the second's


@pytest.mark.slow
def test_the_same_sweep_launched_twice_trains_each_run_once(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", "optsweep", "-m", *QUICK, "trainer.epochs=2",
               "optimizer=adam,adagrad,rmsprop", f"hydra.sweep.dir={sweep}"]
    env = {"OMP_NUM_THREADS": "1"}
    first = processes.start(*command, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2)
    second = processes.python(*command, cwd=tmp_path, env=env)
    first_out, first_err = first.communicate(timeout=600)
    assert first.returncode == 0 and second.returncode == 0, (first_err[-1500:]
                                                              + second.stderr[-1500:])
    trained = (first_out + first_err + second.stdout + second.stderr).count("epoch 1/2 ")
    assert trained == 3  # each of the three runs trained by exactly one of the two commands
    for job in range(3):
        assert RunDir(sweep / str(job)).summary()["status"] == "completed"



def test_a_renewal_renews_at_once_then_every_interval_and_stops_when_told(tmp_path):
    renewed = []
    with lease.Renewal(lambda: renewed.append(time.monotonic()), interval_s=0.05):
        time.sleep(0.3)
    count = len(renewed)
    time.sleep(0.15)
    assert count >= 3 and len(renewed) == count  # nothing after the block
    stopped = []
    with lease.Renewal(lambda: stopped.append(1) or len(stopped) < 2, interval_s=0.02):
        time.sleep(0.2)
    assert stopped == [1, 1]  # a renew that returns False ends the thread: the lease was taken


def test_a_job_directory_is_silent_when_no_record_is_live(tmp_path):
    from datetime import datetime, timedelta

    now = time.time()
    assert lease.silence(tmp_path, datetime.now(), dead_after_s=60, now=now) is None  # just claimed
    old = datetime.now() - timedelta(seconds=120)
    assert "dead_after_s=60" in lease.silence(tmp_path, old, dead_after_s=60, now=now)
    lease.write_record(tmp_path, stale_s=30)  # this process: alive
    assert lease.silence(tmp_path, old, dead_after_s=60, now=now) is None
    assert lease.has_live_record(tmp_path)
    why = lease.silence(tmp_path, old, dead_after_s=60, now=now + 31)
    assert why.startswith(f"its worker died: {contract.HEARTBEAT_FILE} in ") and "31 s ago" in why


def test_a_worker_is_named_by_host_and_pid_and_owner_by_its_slurm_job(monkeypatch):
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert lease.worker_id() == lease.owner_id() == f"{socket.gethostname()}:{os.getpid()}"
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    assert lease.owner_id() == "slurm:77" and lease.worker_id().endswith(f":{os.getpid()}")
