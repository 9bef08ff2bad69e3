"""An Optuna search on a PostgreSQL study, started on two "hosts" at once, each trial a SLURM
job logging to the MLflow server; then PostgreSQL restarts and a third search resumes the
study. What docs/sweeps.md tells cluster users to run, at the smoke size:

    python -m normcoef.train -m hparams_search=optuna_smoke hydra/launcher=slurm_cpu \
        hydra.sweeper.storage=postgresql://<db>/optuna logger.tracking_uri=http://<server> ...
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from conftest import (
    Done,
    Host,
    engines,
    search,
    server_runs,
    slurm_job_states,
    trials,
    unique,
    wait,
)
from optuna.trial import TrialState

from normcoef.tracking import Tag

STUDY = unique("shared")
N_TRIALS = 4


@dataclass
class TwoHosts:
    hosts: tuple[Host, Host]
    done: tuple[Done, Done]


@pytest.fixture(scope="module")
def two_hosts(new_host) -> TwoHosts:
    hosts = (new_host("host_a"), new_host("host_b"))
    started = [search(host, STUDY, N_TRIALS) for host in hosts]
    first, second = (wait(process) for process in started)
    return TwoHosts(hosts, (first, second))


def test_both_searches_exit_0(two_hosts: TwoHosts):
    for done in two_hosts.done:
        assert done.returncode == 0, done.output[-4000:]


def test_the_study_holds_exactly_n_trials_complete_trials(two_hosts: TwoHosts):
    assert len(trials(STUDY, TrialState.COMPLETE)) == N_TRIALS
    assert trials(STUDY, TrialState.RUNNING, TrialState.FAIL) == []


def test_no_two_trials_ran_the_same_parameters(two_hosts: TwoHosts):
    # The learning rate is continuous: trials seeded alike would draw it alike.
    drawn = [tuple(sorted(trial.params.items())) for trial in trials(STUDY)]
    assert len(set(drawn)) == len(drawn)


def test_both_hosts_ran_trials_as_slurm_jobs(two_hosts: TwoHosts):
    for host in two_hosts.hosts:
        states = slurm_job_states(host.root / "multirun" / "optuna_smoke" / STUDY)
        assert states and set(states.values()) == {"COMPLETED"}, states


def test_every_trial_is_a_finished_run_on_the_server(two_hosts: TwoHosts):
    runs = [run for run in server_runs(STUDY) if run.data.tags.get(Tag.SUMMARY) != "true"]
    learning_rates = sorted(float(run.data.params["optimizer.lr"]) for run in runs)

    assert {run.info.status for run in runs} == {"FINISHED"}
    assert learning_rates == sorted(trial.params["optimizer.lr"] for trial in trials(STUDY))
    for run in runs:
        assert "best/val/eps_q" in run.data.metrics


def test_after_postgresql_restarts_a_new_search_resumes_the_study(two_hosts: TwoHosts):
    before = {trial.number for trial in trials(STUDY)}
    engines("stop-postgres")
    engines("start-postgres")

    done = wait(search(two_hosts.hosts[0], STUDY, N_TRIALS + 1))

    assert done.returncode == 0, done.output[-4000:]
    complete = trials(STUDY, TrialState.COMPLETE)
    assert len(complete) == N_TRIALS + 1
    (new,) = [trial for trial in complete if trial.number not in before]
    assert new.number == max(before) + 1  # the numbering goes on: its own job folder
    # The MLflow server, whose store is on the same PostgreSQL, logged it too.
    runs = [run for run in server_runs(STUDY) if run.data.tags.get(Tag.SUMMARY) != "true"]
    assert len(runs) == N_TRIALS + 1
    assert {run.info.status for run in runs} == {"FINISHED"}
